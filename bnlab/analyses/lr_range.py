"""LR range test: the loss-vs-lr curves of a study and the lr_min / lr_max read off them.

Two ways, both from seed 003 problem 2: a grid of constant-rate runs (the
seed's 10 rates from 1e-9 to 1e1, final training loss of each) and one
exponential sweep (lr_schedule range_test: every step's loss at its rate).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bnlab.analyses.collect import read_runs
from bnlab.analyses.formats import fmt_num
from bnlab.analyses.registry import Analysis, figure, register, table
from bnlab.analyses.registry import fragment as make_fragment
from bnlab.params import PARAM_NAMES
from bnlab.runfolder import HISTORY, STEPS
from bnlab.schedules import PICKS_TABLE, pick_lr_bounds


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


# ------------------------------------------------------- the registry entry
# The picks table: runs with lr: pick-<study> read it (bnlab.schedules.chosen_bounds).
PICKS_CSV, FIGURE_PNG = PICKS_TABLE, "lr_range.png"


def compute(ctx) -> None:
    from bnlab.figures.lr_range import plot_lr_range  # matplotlib: loaded only when drawing

    study = ctx.study
    runs = read_runs(ctx.folder("summary") / "runs.csv", study.axes)
    first = study.runs[0].as_strings()
    for column in PARAM_NAMES:  # parameters the study holds fixed are not columns of runs.csv
        if column not in study.axes and column != "seed":
            runs[column] = first[column]
    grid, sweep = grid_curve(runs, ctx.run_root), sweep_curve(runs, ctx.run_root)
    found = picks(grid, sweep)
    found.to_csv(ctx.out / PICKS_CSV, index=False)
    plot_lr_range(grid, sweep, found, ctx.out / FIGURE_PNG, title=study.title, dataset_note=ctx.where)
    print(found.to_string())


def fragment(ctx) -> dict:
    # empty numbers (no blow-up seen) read as NaN; empty texts as ""
    found = pd.read_csv(ctx.out / PICKS_CSV, dtype={"error": str, "rule": str})
    found = found.assign(error=found.error.fillna(""), rule=found.rule.fillna(""))
    rows = [[r["curve"], fmt_num(r["lr_at_min"], 2), fmt_num(r["lr_min"], 2), fmt_num(r["lr_max"], 2),
             fmt_num(r["lr_blowup"], 2) or "—"] for _, r in found.iterrows()]
    return make_fragment(
        figures=[figure(FIGURE_PNG, f"LR range test {ctx.where}: final training loss of each constant-rate run "
                                    "(left) and every step's loss of one exponential sweep (right), with the "
                                    "picked lr_min and lr_max.")],
        tables=[table("LR range test picks. Rule: " + (found.rule.iloc[0] if len(found) else ""),
                      ["curve", "lowest loss at lr", "lr_min", "lr_max", "blew up from lr"], rows,
                      [bool(e) for e in found.error])],
        findings=lr_range_findings(found), references=["Smith 2017"])


register(Analysis(
    name="lr_range",
    description="LR range test: loss against lr for constant-rate runs and a range_test sweep, lr_min / lr_max "
                "picked (seed 003 p. 2; Smith 2017); studies with lr: pick-<study> train with its picks",
    compute=compute, fragment=fragment, reads=(HISTORY, STEPS), needs=("summary",)))
