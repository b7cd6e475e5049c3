"""Snakemake script: one training run -> its run folder (see bnlab.train)."""

import sys
from pathlib import Path

log = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
sys.stderr = log

from bnlab.params import PARAM_FOR_KEY, RunSpec  # noqa: E402
from bnlab.train import execute_run  # noqa: E402

wc = dict(snakemake.wildcards)  # noqa: F821
spec = RunSpec.from_strings({PARAM_FOR_KEY[k]: v for k, v in wc.items()})
execute_run(
    spec,
    snakemake.input.data,  # noqa: F821
    Path(snakemake.output.metrics).parent,  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
    device=snakemake.params.device,  # noqa: F821
    log=lambda line: print(line, file=log),
    checkpoint_every_steps=snakemake.params.checkpoint_every_steps,  # noqa: F821
    checkpoint_every_seconds=snakemake.params.checkpoint_every_seconds,  # noqa: F821
)
