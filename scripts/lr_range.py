"""Snakemake script: LR range test curves and the lr_min / lr_max picks of one study."""

import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from bnlab.analysis.collect import read_runs  # noqa: E402
from bnlab.analysis.lr_range import grid_curve, picks, sweep_curve  # noqa: E402
from bnlab.figures.lr_range import plot_lr_range  # noqa: E402

params = snakemake.params  # noqa: F821
runs = read_runs(snakemake.input.runs, params.axes)  # noqa: F821
for column, value in params.fixed.items():  # parameters the study holds fixed are not columns of runs.csv
    runs[column] = value
grid, sweep = grid_curve(runs, params.run_root), sweep_curve(runs, params.run_root)
table = picks(grid, sweep)
table.to_csv(snakemake.output.table, index=False)  # noqa: F821
plot_lr_range(grid, sweep, table, snakemake.output.figure, title=params.title,  # noqa: F821
              dataset_note=params.dataset_note)
print(table.to_string())
