"""Co-adaptation proxy: grouped bars of mean |corr| between hidden units, per layer and setting.

    plot_coadaptation(layers, "coadaptation.png", title="LeNet-5", dataset_note="on Fashion-MNIST")

layers: the coadaptation analysis's per (label, layer) table (label, dropout, layer_index, layer, mean, min,
max, seeds). One bar per setting in each layer group; min..max over seeds as a whisker; no dropout hatched.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from bnlab.figures.style import FULL_WIDTH_IN, apply_style, palette, plt, wrap

TITLE_CHARS = 100
PROXY = "mean |Pearson correlation| between pairs of hidden units (eval mode, fixed validation subset)"


def plot_coadaptation(layers: pd.DataFrame, out_path, *, title: str = "", dataset_note: str | None = None) -> None:
    apply_style()
    order = layers[["layer_index", "layer"]].drop_duplicates().sort_values(["layer_index", "layer"], kind="stable")
    names = list(dict.fromkeys(order["layer"]))
    labels = list(dict.fromkeys(layers["label"]))
    colors = dict(zip(labels, palette(len(labels))))
    width = 0.8 / max(1, len(labels))
    fig, ax = plt.subplots(figsize=(FULL_WIDTH_IN, 3.4), layout="constrained")
    for k, label in enumerate(labels):
        sel = layers[layers["label"] == label].set_index("layer")
        xs, ys, lo, hi = [], [], [], []
        for i, name in enumerate(names):
            if name not in sel.index or not np.isfinite(float(sel.loc[name, "mean"])):
                continue
            r = sel.loc[name]
            xs.append(i - 0.4 + width * (k + 0.5))
            ys.append(float(r["mean"]))
            lo.append(float(r["mean"]) - float(r["min"]))
            hi.append(float(r["max"]) - float(r["mean"]))
        no_dropout = str(sel["dropout"].iloc[0]) == "no dropout"
        ax.bar(xs, ys, width * 0.92, color=colors[label], hatch="//" if no_dropout else None,
               edgecolor="white" if no_dropout else colors[label], lw=0.3, label=label)
        seeds = sel["seeds"].astype(int)
        if (seeds > 1).any() and xs:
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
    ax.set_xticks(range(len(names)), names)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_xlabel("hidden layer (forward order)")
    ax.set_ylabel("mean |corr| between units")
    ax.set_ylim(0, max(0.05, float(np.nanmax(layers["max"].astype(float))) * 1.15) if len(layers) else 1)
    handles, texts = ax.get_legend_handles_labels()
    ncol = 1 if max(map(len, texts), default=0) > 45 else min(2, max(1, len(texts)))
    fig.legend(handles, [wrap(t, 75 if ncol == 1 else 45) for t in texts], loc="outside lower center", ncol=ncol,
               frameon=False)
    note = f"co-adaptation proxy: {PROXY}; bar = mean over seeds, whisker = min..max; hatched: no dropout"
    lines = [ln for part in (title, f"{dataset_note + '; ' if dataset_note else ''}{note}")
             for ln in textwrap.wrap(part, TITLE_CHARS)]
    fig.suptitle("\n".join(lines), fontsize=9)
    fig.savefig(out_path)
    plt.close(fig)
