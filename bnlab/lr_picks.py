"""The LR range test's picks, resolved before training: run folders of a range-test study -> lr_min / lr_max.

Runs written `lr: pick-<study>` train with what this module picks from that
study's runs (seed 003 p. 2; Smith 2017). It is its own Snakemake job
(rules/train.smk, `lr_picks`), apart from the lr_range analysis that draws
and reports the same curves, so editing analysis or report code never
retrains the runs that use the picks; editing the pick rule does.

Two curves, both from the seed: a grid of constant-rate runs (final
training loss of each) and one exponential sweep (lr_schedule range_test:
every step's loss at its rate).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from bnlab.errors import ConfigError
from bnlab.params import RunSpec
from bnlab.runfolder import METRICS, read_json
from bnlab.schedules import pick_lr_bounds


def range_test_runs(runs: list[RunSpec], run_root: str | Path) -> pd.DataFrame:
    """The columns grid_curve and sweep_curve read, from a study's run specs and their metrics.json."""
    rows = [{"lr": format(run.lr, "g"), "lr_schedule": run.lr_schedule, "seed": run.seed,
             "status": read_json(Path(run_root) / run.relative_dir() / METRICS).get("status"),
             "run_dir": run.relative_dir()} for run in runs]
    return pd.DataFrame(rows, columns=["lr", "lr_schedule", "seed", "status", "run_dir"])


def grid_curve(runs: pd.DataFrame, run_root: str | Path) -> pd.DataFrame:
    """Constant-rate runs: lr and final training loss (inf for a diverged run), sorted by lr."""
    rows = []
    for r in runs[runs.lr_schedule == "constant"].itertuples():
        history = pd.read_parquet(Path(run_root) / r.run_dir / "history.parquet")
        train = history[history.split == "train"]
        loss = float(train.loss.iloc[-1]) if len(train) else math.nan
        rows.append({"lr": float(r.lr), "loss": loss if r.status == "ok" else math.inf,
                     "status": r.status, "seed": r.seed})
    return pd.DataFrame(rows, columns=["lr", "loss", "status", "seed"]).sort_values("lr", ignore_index=True)


def sweep_curve(runs: pd.DataFrame, run_root: str | Path) -> pd.DataFrame:
    """The range-test sweep run(s): every step's lr and training loss."""
    frames = []
    for r in runs[runs.lr_schedule == "range_test"].itertuples():
        steps = pd.read_parquet(Path(run_root) / r.run_dir / "steps.parquet")
        frames.append(steps[["step", "lr", "loss"]].assign(seed=r.seed))
    if not frames:
        return pd.DataFrame(columns=["step", "lr", "loss", "seed"])
    return pd.concat(frames, ignore_index=True)


def picks(grid: pd.DataFrame, sweep: pd.DataFrame) -> pd.DataFrame:
    """lr_min and lr_max by the rule of bnlab.schedules.pick_lr_bounds, for each curve present."""
    rows = []
    for name, curve in (("grid", grid), ("sweep", sweep[sweep.seed == sweep.seed.min()] if len(sweep) else sweep)):
        if len(curve) < 3:
            continue
        mean = curve.groupby("lr", sort=True).loss.mean().reset_index() if name == "grid" else curve
        try:
            p = pick_lr_bounds(mean.lr.tolist(), mean.loss.tolist())
            rows.append({"curve": name, "lr_min": p["lr_min"], "lr_max": p["lr_max"], "lr_at_min": p["lr_at_min"],
                         "lr_blowup": p["lr_blowup"], "rule": p["rule"], "error": ""})
        except ValueError as err:  # the curve never falls: say so instead of inventing bounds
            rows.append({"curve": name, "lr_min": None, "lr_max": None, "lr_at_min": None,
                         "lr_blowup": None, "rule": "", "error": str(err)})
    return pd.DataFrame(rows, columns=["curve", "lr_min", "lr_max", "lr_at_min", "lr_blowup", "rule", "error"])



def write_picks(runs: list[RunSpec], run_root: str | Path, out: str | Path) -> pd.DataFrame:
    """The picks table of a study's runs (bnlab.schedules.chosen_bounds reads it)."""
    table = range_test_runs(runs, run_root)
    found = picks(grid_curve(table, run_root), sweep_curve(table, run_root))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    found.to_csv(out, index=False)
    return found


def check_pick_sources(studies: dict[str, Any]) -> None:
    """Read with the config (`studies`: name -> StudyPlan): lr: pick-<study> must name a study that runs the LR range test and picks nothing itself."""
    for name, study in studies.items():
        for run in study.runs:
            for param, source in run.picks.items():
                where = f"config error at 'studies.{name}' ({param}: pick-{source})"
                if source not in studies:
                    raise ConfigError(f"{where}: no study '{source}'; studies: {', '.join(studies)}")
                if "lr_range" not in studies[source].analyses:
                    raise ConfigError(f"{where}: study '{source}' has no lr_range analysis to pick from")
                if any(r.picks for r in studies[source].runs):
                    raise ConfigError(f"{where}: study '{source}' picks rates itself; pick from a range test "
                                      "with numeric rates")
