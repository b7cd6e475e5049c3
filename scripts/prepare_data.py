"""Snakemake script: cache one dataset as a tensor file (see bnlab.data)."""

import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from bnlab.data import DatasetUnavailable, prepare_dataset  # noqa: E402
from bnlab.data.checksums import ChecksumMismatch  # noqa: E402

name = snakemake.wildcards.dataset  # noqa: F821
params = snakemake.params  # noqa: F821
# scikit-learn's digits has only 1437 training images: hold out at most 300.
val_size = min(params.val_size, 300) if name == "digits" else params.val_size
try:
    prepare_dataset(name, snakemake.output[0], data_dir=params.data_dir, val_size=val_size,  # noqa: F821
                    split_seed=params.split_seed, download=params.download, log=print)
except (DatasetUnavailable, ChecksumMismatch) as err:  # both say what to do: no traceback needed
    print(f"ERROR: {err}")
    raise SystemExit(1)
