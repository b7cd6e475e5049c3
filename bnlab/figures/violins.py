"""Violin plots of learned BN gamma/beta per layer (seed 003 p1), one violin per label."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from bnlab.figures.style import FULL_WIDTH_IN, apply_style, palette, plt

SUBTITLE = "learned BN gamma/beta per layer at the end of training (distribution over channels and seeds)"
# (column, axis label, init value drawn as the reference line)
PANELS = (("gamma", "gamma (scale)", 1.0), ("beta", "beta (shift)", 0.0))
# Below this many values a KDE would invent a shape (and seaborn draws nothing for one value
# or zero spread), so such groups are drawn as their points instead of a violin.
MIN_VIOLIN_N = 8
# Characters of legend text (7.5 pt) that fit across FULL_WIDTH_IN, and the width a
# handle plus spacing takes in characters; rough, erring towards fewer columns.
LEGEND_LINE_CHARS = 110
LEGEND_HANDLE_CHARS = 8
HEADING_LINE_CHARS = 105  # at 9.5 pt; longer heading lines (long labels, title) are wrapped


def _no_bn_note(no_bn_labels: Sequence[str]) -> str:
    # " | " between labels: study labels contain commas ("bn=none, dropout_in=0.2")
    return f"no BN: {' | '.join(no_bn_labels)}" if len(no_bn_labels) else ""


def _tick_labels(params: pd.DataFrame, order: list[str]) -> list[str]:
    """'conv1\\n6 ch': the channel count says how many values one seed adds to a violin."""
    labels = []
    for layer in order:
        runs = params[params["layer_display"] == layer].groupby(["label", "seed"])
        counts = sorted(runs["channel"].nunique().unique())
        labels.append(f"{layer}\n{'/'.join(map(str, counts))} ch")
    return labels


def _is_sparse(data: pd.DataFrame, column: str) -> pd.Series:
    """Mask of rows whose (layer, label) group is too small or too flat for a violin."""
    grouped = data.groupby(["layer_display", "label"])[column]
    return (grouped.transform("size") < MIN_VIOLIN_N) | (grouped.transform("std").fillna(0) == 0)


def _panel(ax, data: pd.DataFrame, column: str, order: list[str], labels: list[str], colors: list) -> None:
    """One parameter's violins per layer (hue = label); sparse groups drawn as points instead."""
    data = data[np.isfinite(data[column].astype(float))]
    sparse = _is_sparse(data, column)
    common = dict(x="layer_display", y=column, hue="label", order=order, hue_order=labels,
                  palette=colors, ax=ax, legend=False)
    # density_norm="width": layers have 1 to 120 channels; equal widths keep the small ones visible.
    sns.violinplot(data=data[~sparse], cut=0, inner="quart", density_norm="width", linewidth=0.7,
                   saturation=0.9, dodge=True, **common)
    if sparse.any():
        sns.stripplot(data=data[sparse], dodge=True, jitter=0.08, size=3.5, edgecolor="0.15", linewidth=0.6, **common)


def _legend_handles(finite_params: pd.DataFrame, labels: list[str], colors: list) -> list:
    """One patch per label with its number of seeds shown, then the init reference line."""
    seeds = finite_params.groupby("label")["seed"].nunique()
    handles = []
    for label, color in zip(labels, colors):
        n = int(seeds.get(label, 0))
        count = f"{n} seed{'s' if n != 1 else ''}" if n else "no finite values"
        handles.append(Patch(facecolor=color, edgecolor="0.2", label=f"{label} ({count})"))
    handles.append(Line2D([], [], color="0.35", ls="--", lw=0.9, label="init (gamma 1, beta 0)"))
    return handles


def _legend_columns(handles: list) -> int:
    """As many columns as fit across FULL_WIDTH_IN: study labels such as
    'bn=hidden, normalize=true, dropout_in=0.0, dropout_hidden=0.0' need one each."""
    widest = max(len(h.get_label()) for h in handles) + LEGEND_HANDLE_CHARS
    return max(1, min(4, len(handles), LEGEND_LINE_CHARS // widest))


def _heading(title: str, n_non_finite: int, no_bn_labels: Sequence[str]) -> list[str]:
    """Heading lines: title, subtitle, how to read the marks, then what is missing.

    Lines are wrapped, so a long title or label list never widens the figure past FULL_WIDTH_IN.
    """
    lines = ([title] if title else []) + [SUBTITLE]
    lines.append(f"lines inside violins: quartiles; points: every value of a group of < {MIN_VIOLIN_N} values or no spread")
    if n_non_finite:
        lines.append(f"{n_non_finite} non-finite value{'s' if n_non_finite != 1 else ''} (diverged run) left out")
    if no_bn := _no_bn_note(no_bn_labels):
        lines.append(no_bn)
    return [textwrap.fill(line, HEADING_LINE_CHARS) for line in lines]


def _empty_figure(out_path: str | Path, title: str, no_bn_labels: Sequence[str]) -> None:
    fig, ax = plt.subplots(figsize=(FULL_WIDTH_IN, 2.0), layout="constrained")
    ax.set_axis_off()
    text = "no run of this study has batch norm\n(no learned gamma/beta to show)"
    note = _no_bn_note(no_bn_labels)
    text += f"\n{textwrap.fill(note, HEADING_LINE_CHARS)}" if note else ""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    fig.suptitle("\n".join(textwrap.fill(t, HEADING_LINE_CHARS) for t in (title, SUBTITLE) if t), fontsize=9.5)
    fig.savefig(out_path)
    plt.close(fig)


def plot_bn_violins(params: pd.DataFrame, out_path: str | Path, *, title: str = "",
                    no_bn_labels: Sequence[str] = ()) -> None:
    """gamma (top) and beta (bottom) per layer in forward order, one violin per label.

    params: final_bn_params' table (layer_position gives the forward order). Dashed lines mark the init values (gamma 1, beta 0).
    Groups with few values (e.g. the 1-channel input BN of a grey image) are drawn as points.
    """
    apply_style()
    finite = np.isfinite(params["gamma"].astype(float)) & np.isfinite(params["beta"].astype(float))
    if params.empty or not finite.any():
        _empty_figure(out_path, title, no_bn_labels)
        return
    order = list(params.sort_values("layer_position", kind="stable")["layer_display"].drop_duplicates())
    labels = list(dict.fromkeys(params["label"]))
    colors = palette(len(labels))
    fig, axes = plt.subplots(2, 1, figsize=(FULL_WIDTH_IN, 5.4), sharex=True, layout="constrained")
    for ax, (column, ylabel, init) in zip(axes, PANELS):
        ax.axhline(init, color="0.35", ls="--", lw=0.9, zorder=0)
        _panel(ax, params, column, order, labels, colors)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("")
        ax.grid(axis="x", visible=False)  # the x axis is categorical: vertical grid lines only clutter
    axes[1].set_xticks(range(len(order)), _tick_labels(params, order))
    axes[1].set_xlabel("BN layer (forward order)")

    handles = _legend_handles(params[finite], labels, colors)
    fig.legend(handles=handles, loc="outside lower center", ncol=_legend_columns(handles), frameon=False)
    fig.suptitle("\n".join(_heading(title, int((~finite).sum()), no_bn_labels)), fontsize=9.5)
    fig.savefig(out_path)
    plt.close(fig)
