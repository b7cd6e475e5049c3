"""Learning curves of a study: mean over seeds and min..max band per setting, diverged runs marked."""

from __future__ import annotations

import pandas as pd

from bnlab.analyses.collect import read_runs
from bnlab.analyses.registry import Analysis, figure, fragment, register

FIGURE_PNG = "learning_curves.png"


def compute(ctx) -> None:
    from bnlab.figures.curves import plot_learning_curves  # matplotlib: loaded only when drawing

    summary = ctx.folder("summary")
    plot_learning_curves(read_runs(summary / "runs.csv", ctx.study.axes), pd.read_parquet(summary / "curves.parquet"),
                         ctx.out / FIGURE_PNG, title=ctx.study.title, dataset_note=ctx.where)


def make_fragment(ctx) -> dict:
    return fragment(figures=[figure(FIGURE_PNG, f"Learning curves {ctx.where}: mean over seeds (line) and min..max "
                                                "over seeds (band), per epoch; an x marks the last finite point of "
                                                "a diverged run.")])


register(Analysis(name="learning_curves", description="loss and accuracy per epoch, mean over seeds with the "
                                                      "min..max band, diverged runs marked",
                  compute=compute, fragment=make_fragment, needs=("summary",)))
