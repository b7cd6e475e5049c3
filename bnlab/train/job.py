"""One Snakemake training job: its request (run folders, files, config) -> execute_runs.

The same function runs in a fork of the warm server (bnlab.warm) and, where
none is running, in the job's own process, so both paths train alike. A
request is plain data, built by scripts/train.py from the job.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO


def job_request(snakemake) -> dict:
    """The JSON-able request of a training job (rules/train.smk, its `snakemake` script object): the run
    folders it writes, one for rule `train`, a fused group's members for a group's rule.

    The runs' parameters are read back from their folder names rather than passed as rule params:
    Snakemake reruns a job whose params change, and a finished member is planned by the `train` rule
    (no params) on later runs.
    """
    return {
        "group": str(snakemake.rule),
        "data": str(snakemake.input.data),
        "out_dirs": [str(Path(p).parent) for p in snakemake.output if Path(p).name == "metrics.json"],
        "logs": [str(p) for p in snakemake.log],
        "threads": int(snakemake.threads),
        "picks": [str(p) for p in snakemake.input.picks],
        "config": snakemake.config,
    }


def is_fused_job(snakemake) -> bool:
    """A fused group's job writes several run folders (several metrics.json outputs)."""
    return sum(Path(p).name == "metrics.json" for p in snakemake.output) > 1


def train_job(request: dict, log: TextIO | None = None) -> list[dict]:
    """Train the request's runs into their folders (several: as one fused group), progress lines to `log`
    (stderr) and to every other run's train.log; returns their metrics."""
    # imported here: job_request() runs in every job's own process, which should not pay for torch
    from bnlab.config import validate_config
    from bnlab.params import RunSpec
    from bnlab.train.run import execute_runs

    # Execution settings are read here rather than passed as rule params: Snakemake
    # reruns a job whose params change, and moving to a GPU or checkpointing more
    # often must not retrain finished runs (the device is recorded in metrics.json).
    execution = validate_config(request["config"])["execution"]
    specs = [RunSpec.from_relative_dir(out.split("/runs/", 1)[-1]) for out in request["out_dirs"]]
    others = [open(path, "a", buffering=1) for path in request["logs"][1:]]

    def emit(line: str) -> None:
        print(line, file=log or sys.stderr, flush=True)
        for handle in others:
            print(line, file=handle)

    try:
        return execute_runs(
            specs, request["data"], request["out_dirs"], fuse=len(specs) > 1, threads=request["threads"],
            device=execution["device"], log=emit,
            checkpoint_every_steps=execution["checkpoint_every_steps"],
            checkpoint_every_seconds=execution["checkpoint_every_seconds"],
            # each table is results/picks/<study>/lr_range.csv or search.csv: the study's picks folder
            pick_tables={Path(path).parent.name: Path(path).parent for path in request["picks"]},
            group=request["group"],
        )
    finally:
        for handle in others:
            handle.close()


# scripts/train.py's names for a fused group's job (scripts/ stays as it is: a changed script retrains every
# run); the warm server's log names the target, so a group's job still reads as train_fused_job there
fused_job_request = job_request
train_fused_job = train_job
