# bnlab: re-run the classic batch-norm / initialisation / dropout studies and
# build one PDF report. Thin on purpose: logic lives in the bnlab package.
from snakemake.utils import min_version

min_version("9.0")


# config.yaml is the default; a --configfile replaces it rather than being
# merged into it (a merge would mix the default studies into, say, smoke.yaml).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/analyze.smk"
include: "rules/report.smk"


rule all:
    input:
        REPORT_PDF,
    default_target: True
