"""LR range test figure: training loss against learning rate, picks marked."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bnlab.figures.style import FULL_WIDTH_IN, apply_style, plt, wrap


def plot_lr_range(grid: pd.DataFrame, sweep: pd.DataFrame, picks: pd.DataFrame, out_path: str, *,
                  title: str, dataset_note: str) -> None:
    apply_style()
    panels = [(name, curve) for name, curve in (("grid", grid), ("sweep", sweep)) if len(curve)]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(FULL_WIDTH_IN, 3.0), squeeze=False,
                             layout="constrained")
    for ax, (name, curve) in zip(axes[0], panels):
        finite = curve[np.isfinite(curve.loss.astype(float))]
        if name == "grid":
            ax.plot(finite.lr, finite.loss, "o-", ms=4, label="final training loss")
            blown = curve[~np.isfinite(curve.loss.astype(float))]
            for lr in blown.lr:
                ax.axvline(lr, color="0.6", ls=":", lw=1)
            if len(blown):
                ax.plot([], [], color="0.6", ls=":", label="diverged")
            ax.set_title(f"{len(curve)} constant rates")
        else:
            ax.plot(finite.lr, finite.loss, lw=0.8, alpha=0.8, label="loss per step")
            ax.set_title("one exponential sweep")
        pick = picks[picks.curve == name]
        if len(pick) and not pick.iloc[0]["error"]:
            p = pick.iloc[0]
            ax.axvline(p["lr_min"], color="tab:green", ls="--", label=f"lr_min {p['lr_min']:.2g}")
            ax.axvline(p["lr_max"], color="tab:red", ls="--", label=f"lr_max {p['lr_max']:.2g}")
        if len(finite):
            # A blown-up loss (thousands) would flatten the part that matters: cap the axis
            # at 3x the starting loss and say so.
            start = float(finite.loss.iloc[: max(1, len(finite) // 20)].mean())
            if finite.loss.max() > 3 * start:
                ax.set_ylim(0, 3 * start)
                ax.text(0.98, 0.02, "axis capped at 3x the first loss", transform=ax.transAxes,
                        ha="right", va="bottom", fontsize=6.5, color="0.4")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss")
        ax.legend(fontsize=7, frameon=False)
    fig.suptitle(wrap(f"{title}: LR range test {dataset_note}; picks by bnlab's rule (see text)", 100), fontsize=9)
    fig.savefig(out_path)
    plt.close(fig)
