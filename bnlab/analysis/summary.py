"""Summary over seeds: mean and sd per grid cell, diverged runs counted, never dropped."""

from __future__ import annotations

import pandas as pd

# (column in the run table, name in the summary)
SUMMARY_METRICS = (
    ("best_val_acc", "best_val_acc"),
    ("final_test_acc", "test_acc"),
    ("final_train_loss", "train_loss"),
    ("final_val_loss", "val_loss"),
    ("train_seconds", "train_seconds"),
)


def summarize(runs: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """One row per label (grid cell): n runs, diverged count, mean/sd of each metric.

    Means are over runs that finished ("ok"); a cell whose runs all diverged
    has empty means and says so in `diverged` (e.g. "2/2"), so a reader sees
    the divergence rather than a missing row.
    """
    rows = []
    for label, group in runs.groupby("label", sort=False):
        ok = group[group.status == "ok"]
        n, n_div = len(group), int((group.status == "diverged").sum())
        row = {"label": label, **{a: group.iloc[0][a] for a in axes}, "n": n, "n_diverged": n_div,
               "diverged": f"{n_div}/{n}"}
        for column, name in SUMMARY_METRICS:
            values = pd.to_numeric(ok[column], errors="coerce").dropna()
            row[f"{name}_mean"] = values.mean() if len(values) else None
            row[f"{name}_sd"] = values.std(ddof=1) if len(values) > 1 else None
        rows.append(row)
    return pd.DataFrame(rows)
