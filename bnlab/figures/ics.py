"""Internal covariate shift over training: one row of panels per weight layer, ||G - G'|| and cos(G, G').

    plot_ics(rows, "ics.png", title="LeNet-5", dataset_note="on Fashion-MNIST")

rows: the ics analysis's long table (label, seed, bn, status, epoch, layer_index, layer, l2, cosine).
Each label (a grid cell) is a line, mean over seeds with the min..max band; no BN dashed, BN solid.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from bnlab.figures.style import FULL_WIDTH_IN, apply_style, palette, plt, wrap

TITLE_CHARS = 100
METHOD = "Santurkar et al. 2018, Definition 2.1"


def layer_order(rows: pd.DataFrame) -> list[str]:
    """Layer names in forward order (by weight-layer index)."""
    layers = rows[["layer_index", "layer"]].drop_duplicates().sort_values(["layer_index", "layer"], kind="stable")
    return list(dict.fromkeys(layers["layer"]))


def chosen_layers(layers: list[str], most: int) -> list[str]:
    """At most `most` layers, evenly spread, the first and the last included."""
    if len(layers) <= most:
        return layers
    picks = sorted({int(round(i)) for i in np.linspace(0, len(layers) - 1, most)})
    return [layers[i] for i in picks]


def band(rows: pd.DataFrame, metric: str, positive: bool = False) -> pd.DataFrame:
    """Per measured step: mean, min and max over seeds of the finite (and, for a log axis, positive) values."""
    v = rows[np.isfinite(rows[metric].astype(float))]
    if positive:
        v = v[v[metric].astype(float) > 0]
    return v.groupby("epoch")[metric].agg(["mean", "min", "max", "count"]).reset_index()


def plot_ics(rows: pd.DataFrame, out_path, *, title: str = "", dataset_note: str | None = None,
             max_layers: int = 8) -> None:
    apply_style()
    layers = chosen_layers(layer_order(rows), max_layers)
    labels = list(dict.fromkeys(rows["label"]))
    colors = dict(zip(labels, palette(len(labels))))
    no_bn = {label: str(rows.loc[rows.label == label, "bn"].iloc[0]) == "none" for label in labels}
    height = min(9.2, 0.9 + 1.45 * len(layers))
    fig, axes = plt.subplots(len(layers), 2, figsize=(FULL_WIDTH_IN, height), sharex=True, squeeze=False,
                             layout="constrained")
    handles = {}
    for r, layer in enumerate(layers):
        for c, (metric, log) in enumerate((("l2", True), ("cosine", False))):
            ax = axes[r, c]
            for label in labels:
                sel = rows[(rows.label == label) & (rows.layer == layer)]
                if sel.empty:
                    continue
                b = band(sel, metric, positive=log)
                if b.empty:
                    continue
                style = "--" if no_bn[label] else "-"
                (line,) = ax.plot(b.epoch, b["mean"], style, color=colors[label])
                handles.setdefault(label, line)
                if (b["count"] > 1).any():
                    ax.fill_between(b.epoch, b["min"], b["max"], color=colors[label], alpha=0.18, lw=0)
                for seed in sel.loc[sel.status == "diverged", "seed"].unique():
                    run = sel[(sel.seed == seed) & np.isfinite(sel[metric].astype(float))]
                    if len(run):
                        last = run.sort_values("epoch").iloc[-1]
                        ax.plot(last.epoch, last[metric], "x", color=colors[label], ms=6, mew=1.8)
            if log:
                ax.set_yscale("log")
                ax.set_ylabel(f"{layer}\n||G − G'||")
            else:
                ax.set_ylabel("cos(G, G')")
            if r == 0:
                ax.set_title("ICS ||G − G'|| of the layer's weight gradient (log)" if log else
                             "cos(G, G'): 1 = direction unchanged")
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    shown = [label for label in labels if label in handles]  # the study's order
    texts = [label + (" (no BN)" if no_bn[label] and "bn=none" not in label else "") for label in shown]
    ncol = 1 if max(map(len, texts), default=0) > 45 else min(2, max(1, len(texts)))
    fig.legend([handles[label] for label in shown], [wrap(t, 75 if ncol == 1 else 45) for t in texts],
               loc="outside lower center", ncol=ncol, frameon=False)
    note = (f"{METHOD}; mean over seeds, band = min..max over seeds; solid: BN, dashed: no BN; "
            "x = last measured step of a diverged run")
    lines = [ln for part in (title, f"{dataset_note + '; ' if dataset_note else ''}{note}")
             for ln in textwrap.wrap(part, TITLE_CHARS)]
    fig.suptitle("\n".join(lines), fontsize=9)
    fig.savefig(out_path)
    plt.close(fig)
