"""LR range test: the loss-vs-lr curves of a study and the lr_min / lr_max read off them.

Two ways, both from seed 003 problem 2: a grid of constant-rate runs (the
seed's 10 rates from 1e-9 to 1e1, final training loss of each) and one
exponential sweep (lr_schedule range_test: every step's loss at its rate).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bnlab.schedules import pick_lr_bounds


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


def lr_range_findings(table: pd.DataFrame) -> list[str]:
    sentences = []
    for _, r in table.iterrows():
        if r["error"]:
            sentences.append(f"The {r['curve']} range test gave no bounds: {r['error']}")
            continue
        sentences.append(f"The {r['curve']} range test puts the lowest loss at lr {r['lr_at_min']:.2g}; the rule "
                         f"picks lr_min = {r['lr_min']:.2g} and lr_max = {r['lr_max']:.2g}"
                         + (f"; the loss blew up from lr {r['lr_blowup']:.2g}." if pd.notna(r["lr_blowup"]) else "."))
    return sentences


def chosen_bounds(table: pd.DataFrame, source: str = "") -> dict:
    """The (lr_min, lr_max) that runs with 'pick-<study>' train with, from a picks table.

    The exponential sweep is Smith's own method and reads the curve at many
    rates, so its picks win; the grid's are the fallback. A range test that
    gave no bounds is an error that says so, never a made-up rate.
    """
    for curve in ("sweep", "grid"):
        rows = table[(table.curve == curve) & table.lr_max.notna() & table.lr_min.notna()]
        if len(rows):
            r = rows.iloc[0]
            return {"lr_min": float(r.lr_min), "lr_max": float(r.lr_max), "curve": curve}
    errors = "; ".join(f"{r.curve}: {r.error}" for r in table.itertuples() if isinstance(r.error, str) and r.error)
    raise ValueError(f"the LR range test of study '{source}' picked no lr_min/lr_max ({errors or 'no curve'}); "
                     "give lr and lr_min as numbers instead of pick-" + source)
