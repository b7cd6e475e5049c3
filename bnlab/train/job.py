"""One Snakemake training job: its request (wildcards, files, config) -> execute_run.

The same function runs in a fork of the warm server (bnlab.warm) and, where
none is running, in the job's own process, so both paths train alike. A
request is plain data, built by scripts/train.py from the job.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO


def job_request(snakemake) -> dict:
    """The JSON-able request of a Snakemake train job (its `snakemake` script object)."""
    return {
        "wildcards": dict(snakemake.wildcards),
        "data": str(snakemake.input.data),
        "out_dir": str(Path(snakemake.output.metrics).parent),
        "log": str(snakemake.log[0]),
        "threads": int(snakemake.threads),
        "picks": [str(p) for p in snakemake.input.picks],
        "config": snakemake.config,
    }


def train_job(request: dict, log: TextIO | None = None) -> dict:
    """Train the request's run into its folder, progress lines to `log` (stderr); returns metrics."""
    # imported here: job_request() runs in every job's own process, which should not pay for torch
    from bnlab.config import validate_config
    from bnlab.params import PARAM_FOR_KEY, RunSpec
    from bnlab.train.run import execute_run

    # Execution settings are read here rather than passed as rule params: Snakemake
    # reruns a job whose params change, and moving to a GPU or checkpointing more
    # often must not retrain finished runs (the device is recorded in metrics.json).
    execution = validate_config(request["config"])["execution"]
    spec = RunSpec.from_strings({PARAM_FOR_KEY[k]: v for k, v in request["wildcards"].items()})
    return execute_run(
        spec,
        request["data"],
        request["out_dir"],
        threads=request["threads"],
        device=execution["device"],
        log=lambda line: print(line, file=log or sys.stderr, flush=True),
        checkpoint_every_steps=execution["checkpoint_every_steps"],
        checkpoint_every_seconds=execution["checkpoint_every_seconds"],
        # each table is results/picks/<study>/lr_range.csv or search.csv: the study's picks folder
        pick_tables={Path(path).parent.name: Path(path).parent for path in request["picks"]},
    )


def is_fused_job(snakemake) -> bool:
    """A fused group's job writes several run folders (several metrics.json outputs)."""
    return sum(Path(p).name == "metrics.json" for p in snakemake.output) > 1


def fused_job_request(snakemake) -> dict:
    """The JSON-able request of a fused group's job (rules/train.smk): its members' run folders.

    The members' parameters are read back from their folder names rather than passed as rule
    params: Snakemake reruns a job whose params change, and a finished member is planned by the
    `train` rule (no params) on later runs.
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


def train_fused_job(request: dict, log: TextIO | None = None) -> list[dict]:
    """Train a fused group into its members' run folders; every progress line goes to every member's train.log."""
    from bnlab.config import validate_config
    from bnlab.params import RunSpec
    from bnlab.train.run import execute_fused

    execution = validate_config(request["config"])["execution"]
    specs = [RunSpec.from_relative_dir(out.split("/runs/", 1)[-1]) for out in request["out_dirs"]]
    others = [open(path, "a", buffering=1) for path in request["logs"][1:]]

    def emit(line: str) -> None:
        print(line, file=log or sys.stderr, flush=True)
        for handle in others:
            print(line, file=handle)

    try:
        return execute_fused(
            specs, request["data"], request["out_dirs"], threads=request["threads"],
            device=execution["device"], log=emit,
            checkpoint_every_steps=execution["checkpoint_every_steps"],
            checkpoint_every_seconds=execution["checkpoint_every_seconds"],
            pick_tables={Path(path).parent.name: Path(path).parent for path in request["picks"]},
            group=request["group"],
        )
    finally:
        for handle in others:
            handle.close()
