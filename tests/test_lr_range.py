"""LR range test analysis: curves from run folders, picks, sentences."""

import math

import numpy as np
import pandas as pd

from bnlab.analyses.lr_range import grid_curve, lr_range_findings, picks, sweep_curve


def write_run(root, name, history=None, steps=None):
    folder = root / name
    folder.mkdir(parents=True)
    if history is not None:
        history.to_parquet(folder / "history.parquet")
    if steps is not None:
        steps.to_parquet(folder / "steps.parquet")
    return name


def test_curves_and_picks(tmp_path):
    lrs = np.logspace(-9, 1, 10)
    # flat, falling from 1e-5 to 1e-2, then blowing up; the last rate diverged
    losses = [2.3, 2.3, 2.3, 2.3, 2.2, 1.2, 0.5, 0.9, 30.0, math.nan]
    rows = []
    for i, (lr, loss) in enumerate(zip(lrs, losses)):
        h = pd.DataFrame({"split": ["val", "train"], "step": [0, 10], "loss": [2.3, loss], "acc": [0.1, 0.5]})
        rows.append({"run_dir": write_run(tmp_path, f"g{i}", history=h), "lr": str(lr), "lr_schedule": "constant",
                     "status": "diverged" if i == 9 else "ok", "seed": 0})
    sweep_lrs = np.logspace(-9, 1, 200)
    sweep_loss = np.where(sweep_lrs < 1e-4, 2.3, np.where(sweep_lrs < 1e-2, 2.3 - 0.5 * np.log10(sweep_lrs / 1e-4), 50.0))
    steps = pd.DataFrame({"step": range(1, 201), "lr": sweep_lrs, "loss": sweep_loss})
    rows.append({"run_dir": write_run(tmp_path, "sweep", steps=steps), "lr": "10", "lr_schedule": "range_test",
                 "status": "ok", "seed": 0})
    runs = pd.DataFrame(rows)
    grid, sweep = grid_curve(runs, tmp_path), sweep_curve(runs, tmp_path)
    assert len(grid) == 10 and math.isinf(grid.loss.iloc[-1]) and grid.loss.iloc[6] == 0.5
    assert len(sweep) == 200
    table = picks(grid, sweep)
    g = table[table.curve == "grid"].iloc[0]
    assert math.isclose(g.lr_at_min, lrs[6]) and g.lr_max < g.lr_at_min and g.lr_min < g.lr_max
    s = table[table.curve == "sweep"].iloc[0]
    assert 1e-3 < s.lr_at_min <= 1e-2 and s.lr_min >= 1e-5
    text = " ".join(lr_range_findings(table))
    assert "grid range test puts the lowest loss at lr 0.0046" in text


def test_a_curve_that_never_falls_gives_no_bounds():
    grid = pd.DataFrame({"lr": [1e-3, 1e-2, 1e-1], "loss": [2.3, 2.3, 9.0], "status": "ok", "seed": 0})
    table = picks(grid, pd.DataFrame(columns=["step", "lr", "loss", "seed"]))
    assert table.iloc[0].error and lr_range_findings(table)[0].startswith("The grid range test gave no bounds")
