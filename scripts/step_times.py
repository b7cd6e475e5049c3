"""Snakemake script: the seconds per optimizer step of each network of one study, timed alone
(bnlab.step_times.step_times_job).

In a fork of the warm server when the workflow started one (bnlab.warm),
otherwise in this process.
"""

from bnlab.warm import run_job

params = snakemake.params  # noqa: F821
run_job("bnlab.step_times:step_times_job",
        {"runs": list(params.runs), "data": dict(params.data), "out": str(snakemake.output[0]),  # noqa: F821
         "device": params.device, "threads": params.threads_per_run},
        snakemake.log[0])  # noqa: F821
