"""Curves with and without batch norm, one panel per setting (the other grid axes)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bnlab.figures.curves import mean_band
from bnlab.figures.style import FULL_WIDTH_IN, apply_style, palette, plt, wrap

METRIC_TEXT = {("val", "acc"): "validation accuracy", ("train", "loss"): "training loss",
               ("val", "loss"): "validation loss", ("train", "acc"): "training accuracy"}


def setting_of(row: pd.Series, axes: list[str]) -> str:
    """Text of a run's non-BN axes: the panel it belongs to."""
    parts = [f"{a}={row[a]}" for a in axes if a != "bn" and str(row[a]) != "na"]
    return ", ".join(parts) or "all runs"


def plot_bn_curves(runs: pd.DataFrame, curves: pd.DataFrame, axes: list[str], out_path: str, *,
                   split: str = "val", metric: str = "acc", title: str = "", dataset_note: str = "") -> None:
    """Grid of panels, one per setting; in each, one line per BN placement (mean over seeds, min..max band).

    A diverged run's last finite point is marked with an x, and the legend
    counts diverged runs per BN placement and setting.
    """
    apply_style()
    runs = runs.copy()
    for a in axes:  # CSV round trips turn "0" into 0; compare as text everywhere
        runs[a] = runs[a].astype(str)
    runs["setting"] = runs.apply(setting_of, axis=1, axes=axes)
    settings = list(dict.fromkeys(runs.setting))
    bn_values = list(dict.fromkeys(runs.bn)) if "bn" in axes else ["(bn fixed)"]
    colors = dict(zip(bn_values, palette(len(bn_values))))
    ncols = min(3 if max(map(len, settings)) <= 40 else 2, len(settings))
    nrows = math.ceil(len(settings) / ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(FULL_WIDTH_IN, 2.2 * nrows + 0.9), squeeze=False,
                             sharey=metric == "acc", layout="constrained")
    for ax, setting in zip(grid.flat, settings):
        in_panel = runs[runs.setting == setting]
        for bn in bn_values:
            group = in_panel[in_panel.bn == bn] if "bn" in axes else in_panel
            if group.empty:
                continue
            label = group.label.iloc[0]
            band = mean_band(curves, split, metric, label)
            n_div = int((group.status == "diverged").sum())
            text = f"bn={bn}" + (f" (diverged {n_div}/{len(group)})" if n_div else "")
            if not band.empty:
                ax.plot(band.epoch, band["mean"], color=colors[bn], label=text)
                if (band["count"] > 1).any():
                    ax.fill_between(band.epoch, band["min"], band["max"], color=colors[bn], alpha=0.18, lw=0)
            for _, run in group[group.status == "diverged"].iterrows():
                pts = curves[(curves.label == label) & (curves.seed == run.seed) & (curves.split == split)]
                pts = pts[np.isfinite(pts[metric].astype(float))]
                if len(pts):
                    ax.plot(pts.epoch.iloc[-1], pts[metric].iloc[-1], "x", color=colors[bn], ms=7, mew=2)
        ax.set_title(wrap(setting, 45 if ncols == 2 else 32), fontsize=7.5)
        if metric == "loss":
            ax.set_yscale("log")
        ax.legend(fontsize=6.5, frameon=False)
    for ax in grid.flat[len(settings):]:
        ax.set_visible(False)
    for ax in grid.flat:
        ax.set_xlabel("epoch")
    for ax in grid[:, 0]:
        ax.set_ylabel(METRIC_TEXT.get((split, metric), f"{split} {metric}"))
    fig.suptitle(f"{title}: {METRIC_TEXT.get((split, metric), metric)} with and without BN"
                 f"\n{dataset_note}; mean over seeds, band = min..max; x = diverged", fontsize=9)
    fig.savefig(out_path)
    plt.close(fig)
