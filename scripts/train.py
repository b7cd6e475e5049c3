"""Snakemake script: one training run -> its run folder (see bnlab.train)."""

import sys
from pathlib import Path

log = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
sys.stderr = log

from bnlab.config import validate_config  # noqa: E402
from bnlab.params import PARAM_FOR_KEY, RunSpec  # noqa: E402
from bnlab.train import execute_run  # noqa: E402

# Execution settings are read here rather than passed as rule params: Snakemake
# reruns a job whose params change, and moving to a GPU or checkpointing more
# often must not retrain finished runs (the device is recorded in metrics.json).
execution = validate_config(snakemake.config)["execution"]  # noqa: F821

wc = dict(snakemake.wildcards)  # noqa: F821
spec = RunSpec.from_strings({PARAM_FOR_KEY[k]: v for k, v in wc.items()})
execute_run(
    spec,
    snakemake.input.data,  # noqa: F821
    Path(snakemake.output.metrics).parent,  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
    device=execution["device"],
    log=lambda line: print(line, file=log),
    checkpoint_every_steps=execution["checkpoint_every_steps"],
    checkpoint_every_seconds=execution["checkpoint_every_seconds"],
    # each table is results/studies/<study>/lr_range.csv
    pick_tables={Path(path).parent.name: path for path in snakemake.input.picks},  # noqa: F821
)
