"""A staged search's figure: validation accuracy against the searched value, per stage, the best marked.

Two panels with linear axes (the seed's grid is evenly spaced, so a log axis would crowd it): the whole
range searched, and a close-up on the last search stage's range. A grey band spans two standard errors
below the best run, the differences a single run per value cannot resolve.
"""

from __future__ import annotations

import pandas as pd

from bnlab.figures.style import FULL_WIDTH_IN, apply_style, palette, plt, wrap
from bnlab.search import METRIC


def plot_search(rows: pd.DataFrame, param: str, out_path, *, title: str, dataset_note: str,
                noise: float | None = None) -> None:
    """rows: one per run with stage, study, status, final_val_acc and `param` (bnlab.analyses.search);
    noise: two standard errors of the best accuracy (a fraction), drawn as a band below it."""
    apply_style()
    stages = sorted(rows.stage.unique())
    searches = [s for s in stages[:-1]] or stages
    fine = rows[rows.stage == searches[-1]]
    fig, axes = plt.subplots(1, 2, figsize=(FULL_WIDTH_IN, 3.1), layout="constrained", sharey=True)
    colors = dict(zip(stages, palette(len(stages))))
    ok_all = rows[(rows.status == "ok") & rows[METRIC].notna()]
    for ax, zoom in zip(axes, (False, True)):
        for stage in stages:
            group = rows[rows.stage == stage]
            ok = group[(group.status == "ok") & group[METRIC].notna()]
            color = colors[stage]
            label = f"stage {stage}: {group.study.iloc[0]} ({len(group)} run{'s' if len(group) > 1 else ''})"
            if stage == stages[-1] and len(stages) > 1:
                ax.plot(ok[param], 100 * ok[METRIC], "*", ms=13, color=color, mec="black", mew=0.6, zorder=5,
                        label=label + ", trained longer")
                continue
            ax.plot(ok[param], 100 * ok[METRIC], "o", ms=4, color=color, alpha=0.85, label=label)
            for value in group[group.status != "ok"][param]:  # a diverged run has no accuracy
                ax.axvline(value, color=color, ls=":", lw=1)
            if len(ok):
                top = ok.loc[ok[METRIC].idxmax()]
                ax.plot([top[param]], [100 * top[METRIC]], "o", ms=10, mfc="none", mec=color, mew=1.5)
        if noise and len(ok_all):
            top = 100 * ok_all[rows.stage.loc[ok_all.index] != stages[-1]][METRIC].max() if len(stages) > 1 \
                else 100 * ok_all[METRIC].max()
            ax.axhspan(top - 100 * noise, top, color="0.5", alpha=0.15, lw=0,
                       label="within 2 s.e. of the best search run" if not zoom else None)
        if zoom and len(fine):
            lo, hi = float(fine[param].min()), float(fine[param].max())
            pad = 0.08 * (hi - lo) if hi > lo else 0.1 * abs(hi) or 1e-6
            ax.set_xlim(lo - pad, hi + pad)
            ax.set_title(f"close-up: stage {searches[-1]}'s range")
        else:
            ax.set_title("the whole range searched")
        ax.set_xlabel(param)
    axes[0].set_ylabel("final validation accuracy (%)")
    axes[0].legend(loc="lower right", frameon=False, fontsize=7)
    fig.suptitle(wrap(f"{title} {dataset_note}", 110), fontsize=9.5)
    fig.savefig(out_path)
    plt.close(fig)
