"""Snakemake script: the seconds per optimizer step of each network of one study, timed alone
(bnlab.step_times.step_times_job).

In a fork of the warm server when the workflow started one (bnlab.warm),
otherwise in this process.
"""

import sys

from bnlab.warm import submit

params = snakemake.params  # noqa: F821
kwargs = {"runs": list(params.runs), "data": dict(params.data), "out": str(snakemake.output[0]),  # noqa: F821
          "device": params.device, "threads": params.threads_per_run}
code = submit("bnlab.step_times:step_times_job", kwargs, snakemake.log[0])  # noqa: F821
if code is None:  # no warm server to ask: time here
    sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
    from bnlab.step_times import step_times_job

    step_times_job(**kwargs)
elif code != 0:
    sys.exit(code)  # the job's log has the traceback
