"""Snakemake script: one analysis of one study (bnlab.analyses.runner.analysis_job).

In a fork of the warm server when the workflow started one (bnlab.warm),
otherwise in this process.
"""

from bnlab.warm import run_job

params = snakemake.params  # noqa: F821
run_job("bnlab.analyses.runner:analysis_job",
        {"study": params.study, "analysis": snakemake.wildcards.analysis,  # noqa: F821
         "out": str(snakemake.output[0]), "options": params.options, "extra": params.extra,  # noqa: F821
         "plugins": list(params.plugins), "threads": snakemake.threads},  # noqa: F821
        snakemake.log[0])  # noqa: F821
