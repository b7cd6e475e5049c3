"""Snakemake script: learning-curve figure of one study."""

import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

import pandas as pd  # noqa: E402

from bnlab.analysis.collect import read_runs  # noqa: E402
from bnlab.figures.curves import plot_learning_curves  # noqa: E402

plot_learning_curves(
    read_runs(snakemake.input.runs, snakemake.params.axes),  # noqa: F821
    pd.read_parquet(snakemake.input.curves),  # noqa: F821
    snakemake.output[0],  # noqa: F821
    title=snakemake.params.title,  # noqa: F821
    dataset_note=snakemake.params.dataset_note,  # noqa: F821
)
