"""Figures of the best-network search (bnlab.analyses.best_net): the accuracy trade-offs, and inside the nets."""

from __future__ import annotations

import math

import pandas as pd

from bnlab.figures.style import FULL_WIDTH_IN, apply_style, plt, wrap


def _numbered(ax, cands: pd.DataFrame, x: str) -> None:
    """Each candidate as a numbered point (the number is its row in the table below the figure).

    Candidates of one size share an x (one choice at a time changes no parameter count): their numbers
    go alternately right and left of the points, so that close accuracies do not print over each other."""
    side: dict = {}
    for i, r in enumerate(cands.itertuples(), start=1):
        if not math.isfinite(r.test_acc):
            continue
        marker = "*" if r.best else "o"
        ax.plot(getattr(r, x), 100 * r.test_acc, marker, ms=13 if r.best else 5,
                color="#d62728" if r.best else ("#1f77b4" if r.pareto else "#7f7f7f"), mec="black", mew=0.5,
                zorder=4)
        k = side[getattr(r, x)] = side.get(getattr(r, x), -1) + 1
        ax.annotate(str(i), (getattr(r, x), 100 * r.test_acc), xytext=(6 if k % 2 == 0 else -6, 0),
                    textcoords="offset points", fontsize=7, va="center", ha="left" if k % 2 == 0 else "right")


def plot_tradeoff(cands: pd.DataFrame, out_path, *, title: str, dataset_note: str) -> None:
    """Left: test accuracy against parameters, Pareto front joined; right: against training seconds."""
    apply_style()
    fig, (left, right) = plt.subplots(1, 2, figsize=(FULL_WIDTH_IN, 3.0), layout="constrained", sharey=True)
    front = cands[cands.pareto].sort_values("parameters")
    left.step(front.parameters, 100 * front.test_acc, where="post", color="#1f77b4", lw=1, alpha=0.7,
              label="Pareto front")
    _numbered(left, cands, "parameters")
    left.set_xscale("log")
    left.set_xlabel("parameters")
    left.set_ylabel("test accuracy (%)")
    left.legend(loc="best")
    _numbered(right, cands, "train_seconds")
    right.set_xlabel("training seconds per run")
    fig.suptitle(wrap(f"{title} ({dataset_note}): numbers are the table's rows", 90), fontsize=9.5)
    fig.savefig(out_path)
    plt.close(fig)


def _grid(ax_row, stack, cmap: str, symmetric: bool) -> None:
    """Draw the first len(ax_row) images of stack [N, H, W], each scaled to its own range."""
    for ax, img in zip(ax_row, stack):
        if symmetric:
            lim = float(img.abs().max()) or 1.0
            ax.imshow(img.numpy(), cmap=cmap, vmin=-lim, vmax=lim)
        else:
            ax.imshow(img.numpy(), cmap=cmap)
    for ax in ax_row:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)


def plot_inside(panels: list[dict], out_path, *, dataset_note: str, columns: int = 16) -> None:
    """Per panel (a network) a band of two rows: its first conv filters, and the feature maps after that
    layer for one image (the input, at the left)."""
    apply_style()
    shown = min(columns, max(p["filters"].shape[0] for p in panels))
    cell = FULL_WIDTH_IN / (shown + 1.5)
    fig = plt.figure(figsize=(FULL_WIDTH_IN, len(panels) * (2 * cell + 0.45) + 0.3), layout="constrained")
    bands = fig.subfigures(len(panels), 1, squeeze=False)[:, 0]
    for band, p in zip(bands, panels):
        band.suptitle(wrap(f"{p['kind']}: '{p['label']}'. Top: the first-layer filters; bottom: the feature maps "
                           f"after that layer for the input at the left ({p['dead']} of {p['channels']} zero "
                           "everywhere)", 120), fontsize=7.5)
        axes = band.subplots(2, shown + 1, squeeze=False)
        image = p["image"]
        axes[0, 0].imshow((image[0] if image.shape[0] == 1 else image.permute(1, 2, 0).clamp(-3, 3)).numpy(),
                          cmap="gray")
        axes[0, 0].set_xlabel(f"class {p['target']}", fontsize=6.5, labelpad=1)
        axes[1, 0].set_visible(False)
        filters = p["filters"]
        # a filter over several input channels is shown as its mean over them (colour needs 3 channels)
        kernels = filters[:, 0] if filters.shape[1] == 1 else filters.mean(dim=1)
        _grid(axes[0, 1:], kernels[:shown], "RdBu_r", symmetric=True)
        _grid(axes[1, 1:], p["maps"][:shown], "viridis", symmetric=False)
        for ax in (*axes[0, 1 + len(kernels[:shown]):], *axes[1, 1 + len(p["maps"][:shown]):]):
            ax.set_visible(False)
        axes[0, 0].set_xticks([])
        axes[0, 0].set_yticks([])
        axes[0, 0].grid(False)
    fig.suptitle(f"The first conv layer, {dataset_note}", fontsize=9)
    fig.savefig(out_path)
    plt.close(fig)
