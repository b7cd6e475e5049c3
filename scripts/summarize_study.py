"""Snakemake script: a study's run table, summary over seeds and curve data."""

import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from bnlab.analysis.collect import collect_curves, collect_runs  # noqa: E402
from bnlab.analysis.summary import summarize  # noqa: E402

study = snakemake.params.study  # noqa: F821
runs = collect_runs(study, snakemake.params.run_root)  # noqa: F821
runs.to_csv(snakemake.output.runs, index=False)  # noqa: F821
summarize(runs, study.axes).to_csv(snakemake.output.summary, index=False)  # noqa: F821
collect_curves(study, snakemake.params.run_root).to_parquet(snakemake.output.curves, index=False)  # noqa: F821
print(f"{study.name}: {len(runs)} runs, {int((runs.status == 'diverged').sum())} diverged")
