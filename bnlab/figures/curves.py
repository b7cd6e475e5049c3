"""Learning curves: mean over seeds with a min-max band; diverged runs marked; test curves dashed where recorded."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from bnlab.figures.style import FULL_WIDTH_IN, apply_style, palette, plt, wrap

PANELS = (("train", "loss", "training loss"), ("val", "loss", "validation loss"),
          ("train", "acc", "training accuracy"), ("val", "acc", "validation accuracy"))
# Runs with eval_test: every record test-split curve points (split "test"); they share the validation panels.
TEST_SPLIT = "test"
TEST_TITLES = {"loss": "validation (solid) and test (dashed) loss",
               "acc": "validation (solid) and test (dashed) accuracy"}


def has_test_curves(curves: pd.DataFrame) -> bool:
    """Whether any run recorded test-split curve points (not only the final whole-split evaluation)."""
    return bool((curves.split == TEST_SPLIT).any())


def legend_label(label: str, runs: pd.DataFrame) -> str:
    """Label plus '(diverged k/n)' when any of its runs diverged."""
    group = runs[runs.label == label]
    k = int((group.status == "diverged").sum())
    return f"{label} (diverged {k}/{len(group)})" if k else label


def mean_band(curves: pd.DataFrame, split: str, metric: str, label: str) -> pd.DataFrame:
    """Per evaluation step: mean, min and max over the label's seeds (finite values only)."""
    sel = curves[(curves.label == label) & (curves.split == split)]
    sel = sel[np.isfinite(sel[metric].astype(float))]
    return sel.groupby("epoch")[metric].agg(["mean", "min", "max", "count"]).reset_index()


def plot_learning_curves(runs: pd.DataFrame, curves: pd.DataFrame, out_path: str, *, title: str = "",
                         dataset_note: str | None = None) -> dict:
    """Four panels (train/val x loss/acc); where test curves were recorded they are dashed in the validation
    panels, in each setting's colour. Returns {"test_curves": bool}: whether any were drawn."""
    apply_style()
    labels = list(dict.fromkeys(runs.label))
    colors = dict(zip(labels, palette(len(labels))))
    with_test = has_test_curves(curves)
    fig, axes = plt.subplots(2, 2, figsize=(FULL_WIDTH_IN, 5.6), sharex=True, layout="constrained")
    for ax, (split, metric, name) in zip(axes.flat, PANELS):
        if with_test and split == "val":
            name = TEST_TITLES[metric]
            for label in labels:
                test = mean_band(curves, TEST_SPLIT, metric, label)
                if test.empty:
                    continue
                ax.plot(test.epoch, test["mean"], color=colors[label], ls="--", lw=1.1)
                if (test["count"] > 1).any():
                    ax.fill_between(test.epoch, test["min"], test["max"], color=colors[label], alpha=0.08, lw=0)
        for label in labels:
            band = mean_band(curves, split, metric, label)
            if band.empty:
                continue
            ax.plot(band.epoch, band["mean"], color=colors[label], label=legend_label(label, runs))
            if (band["count"] > 1).any():
                ax.fill_between(band.epoch, band["min"], band["max"], color=colors[label], alpha=0.18, lw=0)
            # A diverged run ends early: mark where with an x at its last finite value.
            for _, run in runs[(runs.label == label) & (runs.status == "diverged")].iterrows():
                last = curves[(curves.label == label) & (curves.seed == run.seed) & (curves.split == split)]
                last = last[np.isfinite(last[metric].astype(float))]
                if len(last):
                    ax.plot(last.epoch.iloc[-1], last[metric].iloc[-1], "x", color=colors[label], ms=7, mew=2)
        ax.set_title(name)
        ax.set_ylabel(metric)
        if metric == "loss":
            ax.set_yscale("log")
    for ax in axes[1]:
        ax.set_xlabel("epoch")
    handles, texts = axes.flat[0].get_legend_handles_labels()
    ncol = 1 if max(map(len, texts), default=0) > 45 else min(3, max(1, len(texts)))
    texts = [wrap(t, 75 if ncol == 1 else 40) for t in texts]
    if with_test:  # what the two line styles of the validation panels mean
        handles += [Line2D([], [], color="0.3"), Line2D([], [], color="0.3", ls="--", lw=1.1)]
        texts += ["validation split (solid)", "test split (dashed)"]
    fig.legend(handles, texts, loc="outside lower center", ncol=ncol, frameon=False)
    note = "mean over seeds, band = min..max over seeds; x = last finite point of a diverged run"
    if with_test:
        note += "; dashed = test split"
    fig.suptitle(f"{title}\n{dataset_note + '; ' if dataset_note else ''}{note}", fontsize=9.5)
    fig.savefig(out_path)
    plt.close(fig)
    return {"test_curves": with_test}
