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


def dashed_test_note(curves: pd.DataFrame) -> str:
    """The caption's sentence on test curves: which runs recorded them and on how many images ('' if none)."""
    test = curves[curves.split == "test"]
    if test.empty:
        return ""
    images = sorted({int(n) for n in test["images"].dropna()}) if "images" in test else []
    on = f" on {' or '.join(f'{n:,}' for n in images)} test images" if images else ""
    labels = test.label.nunique()
    return (f" Dashed lines in the validation panels are the test split, evaluated at every curve point{on} "
            f"(eval_test: every; {labels} of {curves.label.nunique()} settings recorded it).")


def make_fragment(ctx) -> dict:
    curves = pd.read_parquet(ctx.folder("summary") / "curves.parquet")
    return fragment(figures=[figure(FIGURE_PNG, f"Learning curves {ctx.where}: mean over seeds (line) and min..max "
                                                "over seeds (band), per epoch; an x marks the last finite point of "
                                                "a diverged run." + dashed_test_note(curves))])


register(Analysis(name="learning_curves", description="loss and accuracy per epoch, mean over seeds with the "
                                                      "min..max band, diverged runs marked",
                  compute=compute, fragment=make_fragment, needs=("summary",)))
