"""Snakemake script: growing batch against decaying lr (and other schedules) of one study."""

import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from bnlab.analysis.batch_growth import policy_table, step_table, summary  # noqa: E402
from bnlab.figures.batch_growth import plot_batch_growth  # noqa: E402

study = snakemake.params.study  # noqa: F821
out = snakemake.output  # noqa: F821
table = policy_table(study, snakemake.params.run_root)  # noqa: F821
table.to_csv(out.runs, index=False)
summ = summary(table)
summ.to_csv(out.table, index=False)
plot_batch_growth(step_table(study, snakemake.params.run_root), table, out.figure,  # noqa: F821
                  title=study.title, dataset_note=study.dataset_note())
print(summ.to_string())
