"""Seconds per optimizer step of each network a study trains, timed alone.

Training jobs share the machine (two at a time on a 2-core workstation, several on a GPU), so a run's own
train_seconds measures its neighbours as much as itself: the same work took 6 to 19 s. The rule that calls
this (rules/train.smk, step_times) takes every core Snakemake was given, so no job runs beside it, and
times each distinct network of the study (bnlab.cost.measure_key: model, widths, BN, activation, dropout,
optimizer, batch) with the run's own model, optimizer and training loop on random tensors, at the torch
threads a run uses: one warm-up step, then `rounds` rounds of the same number of steps. Each network's row
gives the median seconds per step over the rounds and their range, the spread a reader needs to judge a
ratio of two of them.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bnlab.cost import key_label, measure_key, run_cost, time_steps
from bnlab.params import RunSpec

STEP_TIMES_TABLE = "step_times.csv"
COLUMNS = ["run_dir", "network", "batch", "steps", "rounds", "s_per_step", "s_per_step_min", "s_per_step_max"]
ROUNDS = 5
ROUND_SECONDS = 0.5  # steps per round: as many as fit in this by the warm-up's pace, 3 to 20


@dataclass(frozen=True)
class StepTime:
    network: str  # bnlab.cost.key_label
    batch: int
    steps: int  # per round
    rounds: list[float]  # seconds per step of each round

    @property
    def median(self) -> float:
        return statistics.median(self.rounds)


def time_network(run: RunSpec, batch: int, device, *, network: str = "", rounds: int = ROUNDS,
                 seconds: float = ROUND_SECONDS,
                 timer: Callable[[RunSpec, int, int, object], float] = time_steps) -> StepTime:
    """Rounds of steps of one run's network at `batch` (timer: bnlab.cost.time_steps, train_seconds of n
    steps); the step count per round is fixed by a warm-up step, so every round does the same work."""
    warm = timer(run, batch, 1, device)
    steps = max(3, min(20, int(seconds / max(warm, 1e-6))))
    per_step = [timer(run, batch, steps, device) / steps for _ in range(rounds)]
    return StepTime(network=network, batch=batch, steps=steps, rounds=per_step)


def time_alone(runs: list[RunSpec], config_data: Mapping, device, *, rounds: int = ROUNDS,
               seconds: float = ROUND_SECONDS, timer=time_steps, log: Callable[[str], None] = print) -> pd.DataFrame:
    """One row per run (COLUMNS): the seconds per step of its network, timed once per distinct network."""
    keys = {run.relative_dir(): measure_key(run_cost(run, config_data)) for run in runs}
    timed: dict[tuple, StepTime] = {}
    distinct: dict[tuple, RunSpec] = {}  # each network, with the first run that trains it
    for run in runs:
        distinct.setdefault(keys[run.relative_dir()], run)
    for i, (key, run) in enumerate(distinct.items(), start=1):
        start = time.perf_counter()
        t = timed[key] = time_network(run, key[-1], device, network=key_label(key), rounds=rounds, seconds=seconds,
                                      timer=timer)
        log(f"[{i}/{len(distinct)}] {t.network}: {t.median * 1e3:.3g} ms/step (median of {rounds} rounds of "
            f"{t.steps} steps, {min(t.rounds) * 1e3:.3g}..{max(t.rounds) * 1e3:.3g}), "
            f"{time.perf_counter() - start:.1f} s")
    rows = []
    for run in runs:
        t = timed[keys[run.relative_dir()]]
        rows.append({"run_dir": run.relative_dir(), "network": t.network, "batch": t.batch, "steps": t.steps,
                     "rounds": len(t.rounds), "s_per_step": t.median, "s_per_step_min": min(t.rounds),
                     "s_per_step_max": max(t.rounds)})
    return pd.DataFrame(rows, columns=COLUMNS)


def write_step_times(runs: list[RunSpec], config_data: Mapping, out: str | Path, *, device: str,
                     threads: int) -> pd.DataFrame:
    """The study's table at `out`, timed on `device` with `threads` torch threads (a run's)."""
    import os

    import torch

    from bnlab.train.allocator import keep_freed_memory
    from bnlab.train.determinism import prepare_determinism
    from bnlab.train.run import resolve_device

    dev = resolve_device(device)
    prepare_determinism(dev)  # as a run: deterministic algorithms, whose speed is part of a run's
    torch.set_num_threads(max(1, min(int(threads), os.cpu_count() or 1)))
    keep_freed_memory()  # as a run trains
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"timing {len(runs)} runs' networks on {dev}, {torch.get_num_threads()} threads "
          f"(load average before: {load:.2f})")
    table = time_alone(runs, config_data, dev)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    return table


def read_step_times(path: str | Path) -> dict[str, dict] | None:
    """run_dir -> its row, or None where the study's networks were not timed (no table)."""
    path = Path(path)
    if not path.exists():
        return None
    return {row["run_dir"]: row for row in pd.read_csv(path).to_dict(orient="records")}


def step_times_job(runs: list[dict], data: Mapping, out: str, device: str, threads: int) -> None:
    """One Snakemake step_times job (scripts/step_times.py): in a fork of the warm server (bnlab.warm), which
    spares the job importing torch and pandas (about 4 s on both of its cores), or in its own process."""
    table = write_step_times([RunSpec(**run) for run in runs], data, out, device=device, threads=threads)
    print(table.drop(columns="run_dir").drop_duplicates().to_string())
