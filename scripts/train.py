"""Snakemake script: one training run -> its run folder (bnlab.train.job).

In a fork of the warm server when the workflow started one (bnlab.warm),
otherwise in this process.
"""

import sys

from bnlab.train.job import job_request
from bnlab.warm import submit

request = job_request(snakemake)  # noqa: F821
code = submit("bnlab.train.job:train_job", {"request": request}, snakemake.log[0])  # noqa: F821
if code is None:  # no warm server to ask: train here
    log = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
    sys.stderr = log
    from bnlab.train.job import train_job

    train_job(request, log)
elif code != 0:
    sys.exit(code)  # the run's train.log has the traceback
