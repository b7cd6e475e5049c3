"""Curves with and without batch norm, one panel per setting (every other axis equal)."""

from __future__ import annotations

import pandas as pd

from bnlab.analyses.collect import read_runs
from bnlab.analyses.registry import Analysis, figure, fragment, register

ACC_PNG, LOSS_PNG = "bn_curves_acc.png", "bn_curves_loss.png"


def compute(ctx) -> None:
    from bnlab.figures.bn_curves import plot_bn_curves  # matplotlib: loaded only when drawing

    summary, axes = ctx.folder("summary"), ctx.study.axes
    runs, curves = read_runs(summary / "runs.csv", axes), pd.read_parquet(summary / "curves.parquet")
    for name, split, metric in ((ACC_PNG, "val", "acc"), (LOSS_PNG, "train", "loss")):
        plot_bn_curves(runs, curves, axes, ctx.out / name, split=split, metric=metric,
                       title=ctx.study.title, dataset_note=ctx.where)


def make_fragment(ctx) -> dict:
    return fragment(figures=[
        figure(ACC_PNG, f"Validation accuracy with and without BN, one panel per setting, {ctx.where}."),
        figure(LOSS_PNG, f"Training loss (log scale) with and without BN, one panel per setting, {ctx.where}."),
    ])


register(Analysis(name="bn_curves", description="validation accuracy and training loss with and without BN, "
                                                 "one panel per setting",
                  compute=compute, fragment=make_fragment, needs=("summary",)))
