"""Snakemake script: BN speedup per seed and paired over seeds (see SCIENCE.md)."""

import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

import pandas as pd  # noqa: E402

from bnlab.analysis.collect import read_runs  # noqa: E402
from bnlab.analysis.speedup import speedup_paired, speedup_per_seed  # noqa: E402

axes = snakemake.params.axes  # noqa: F821
per_seed = speedup_per_seed(read_runs(snakemake.input.runs, axes), pd.read_parquet(snakemake.input.curves), axes)  # noqa: F821
per_seed.to_csv(snakemake.output.per_seed, index=False)  # noqa: F821
speedup_paired(per_seed).to_csv(snakemake.output.paired, index=False)  # noqa: F821
print(per_seed.to_string())
