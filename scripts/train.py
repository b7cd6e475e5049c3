"""Snakemake script: one training run, or one fused group of runs, -> run folders (bnlab.train.job).

Rule `train` runs one run; a fused group's rule (rules/train.smk) lists several
run folders as outputs and trains them as one fused model. Both use this one
script: Snakemake records a script rule's code by its script, so a finished
fused member planned later by `train` is not rerun for "code changed".

In a fork of the warm server when the workflow started one (bnlab.warm),
otherwise in this process.
"""

import sys

from bnlab.train.job import fused_job_request, is_fused_job, job_request
from bnlab.warm import submit

fused = is_fused_job(snakemake)  # noqa: F821
request = fused_job_request(snakemake) if fused else job_request(snakemake)  # noqa: F821
target = "train_fused_job" if fused else "train_job"
code = submit(f"bnlab.train.job:{target}", {"request": request}, snakemake.log[0])  # noqa: F821
if code is None:  # no warm server to ask: train here
    log = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
    sys.stderr = log
    from bnlab.train import job

    getattr(job, target)(request, log)
elif code != 0:
    sys.exit(code)  # the (first) run's train.log has the traceback
