"""Snakemake script: curves with and without BN, one panel per setting."""

import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

import pandas as pd  # noqa: E402

from bnlab.analysis.collect import read_runs  # noqa: E402
from bnlab.figures.bn_curves import plot_bn_curves  # noqa: E402

params = snakemake.params  # noqa: F821
runs = read_runs(snakemake.input.runs, params.axes)  # noqa: F821
curves = pd.read_parquet(snakemake.input.curves)  # noqa: F821
for out, split, metric in ((snakemake.output.acc, "val", "acc"), (snakemake.output.loss, "train", "loss")):  # noqa: F821
    plot_bn_curves(runs, curves, params.axes, out, split=split, metric=metric,
                   title=params.title, dataset_note=params.dataset_note)
