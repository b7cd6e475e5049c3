"""Snakemake script: a search stage's candidates (one row per run), for the runs written best-/draw<i>-<study>."""

import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from bnlab.search import write_candidates  # noqa: E402

params = snakemake.params  # noqa: F821
print(write_candidates(params.runs, params.run_root, snakemake.output[0]).to_string())  # noqa: F821
