"""Snakemake script: one analysis of one study (see bnlab.analyses)."""

import sys
from pathlib import Path

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from bnlab.analyses import load_plugin, run_analysis  # noqa: E402

params = snakemake.params  # noqa: F821
for path in params.plugins:  # analyses registered outside the package
    load_plugin(path)
out = Path(snakemake.output[0])  # noqa: F821  results/studies/<study>/<analysis>
run_analysis(params.study, snakemake.wildcards.analysis, results=out.parents[2],  # noqa: F821
             options=params.options, extra=params.extra)
print(f"wrote {out}")
