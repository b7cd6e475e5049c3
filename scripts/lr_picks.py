"""Snakemake script: the LR range test's picks of one study, for the runs written pick-<study>."""

import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from bnlab.lr_picks import write_picks  # noqa: E402

params = snakemake.params  # noqa: F821
print(write_picks(params.runs, params.run_root, snakemake.output[0]).to_string())  # noqa: F821
