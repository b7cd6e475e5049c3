"""Snakemake script: the seconds per optimizer step of each network of one study, timed alone."""

import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from bnlab.params import RunSpec  # noqa: E402
from bnlab.step_times import write_step_times  # noqa: E402

params = snakemake.params  # noqa: F821
runs = [RunSpec(**run) for run in params.runs]
table = write_step_times(runs, params.data, snakemake.output[0], device=params.device,  # noqa: F821
                         threads=params.threads_per_run)
print(table.drop(columns="run_dir").drop_duplicates().to_string())
