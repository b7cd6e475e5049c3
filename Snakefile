# bnlab: re-run the classic batch-norm / initialisation / dropout studies and
# build one PDF report. Thin on purpose: logic lives in the bnlab package.
from snakemake.utils import min_version

from bnlab.snakemake_private import configfile_given  # the workflow's Snakemake internals live there

# a callable `priority:` (rules/train.smk) needs 9.17
min_version("9.17")


# config.yaml is the default; a --configfile replaces it rather than being
# merged into it (a merge would mix the default studies into, say, smoke.yaml).
if not configfile_given(workflow):

    configfile: "config.yaml"


# `snakemake --report report.zip`: the PDF and every figure and table with its caption (rules/analyze.smk)
report: "report/snakemake/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/analyze.smk"
include: "rules/report.smk"


# The warm server for this workflow's jobs (bnlab/warm.py; when: rules/common.smk).
onstart:
    if warm_server_wanted():
        from bnlab import warm

        WARM_SERVER["proc"] = warm.start(f"{R}/logs/warm_server.log")


onsuccess:
    from bnlab import warm

    warm.stop(WARM_SERVER.pop("proc", None))
    stop_rescheduling_timers()


onerror:
    from bnlab import warm

    warm.stop(WARM_SERVER.pop("proc", None))
    stop_rescheduling_timers()


rule all:
    default_target: True
    input:
        REPORT_PDF,
