"""Snakemake script: one analysis of one study (bnlab.analyses.runner.analysis_job).

In a fork of the warm server when the workflow started one (bnlab.warm),
otherwise in this process.
"""

import sys

from bnlab.warm import submit

params = snakemake.params  # noqa: F821
kwargs = {"study": params.study, "analysis": snakemake.wildcards.analysis,  # noqa: F821
          "out": str(snakemake.output[0]), "options": params.options, "extra": params.extra,  # noqa: F821
          "plugins": list(params.plugins), "threads": snakemake.threads}  # noqa: F821
code = submit("bnlab.analyses.runner:analysis_job", kwargs, snakemake.log[0])  # noqa: F821
if code is None:  # no warm server to ask: run here
    sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
    from bnlab.analyses.runner import analysis_job

    analysis_job(**kwargs)
elif code != 0:
    sys.exit(code)  # the analysis log has the traceback
