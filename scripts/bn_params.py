"""Snakemake script: learned BN gamma/beta per layer (table, long data, violins)."""

import sys
from pathlib import Path

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from bnlab.analysis.bn_params import final_bn_params, per_layer_summary  # noqa: E402
from bnlab.analysis.collect import read_runs  # noqa: E402
from bnlab.figures.violins import plot_bn_violins  # noqa: E402

params = snakemake.params  # noqa: F821
runs = read_runs(snakemake.input.runs, params.axes)  # noqa: F821
bn = final_bn_params([(r.label, int(r.seed), Path(params.run_root) / r.run_dir) for r in runs.itertuples()])
bn.to_parquet(snakemake.output.params, index=False)  # noqa: F821
per_layer_summary(bn).to_csv(snakemake.output.layers, index=False)  # noqa: F821
no_bn = [label for label in dict.fromkeys(runs.label) if label not in set(bn.label)]
plot_bn_violins(bn, snakemake.output.violins, title=params.title, no_bn_labels=no_bn)  # noqa: F821
