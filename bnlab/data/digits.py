"""scikit-learn's bundled 8x8 digits: the dataset that is always there (tests, smoke runs)."""

from __future__ import annotations

import numpy as np
import torch

from .catalog import DIGIT_CLASSES, DIGITS_N_TEST


def read_digits(split_seed: int) -> dict:
    """Load digits as uint8 [N, 1, 8, 8] and carve a seeded test split of DIGITS_N_TEST images."""
    from sklearn.datasets import load_digits  # imported here: only this dataset needs sklearn

    bunch = load_digits()
    # Pixel values are 0..16; stretch to the 0..255 range the other datasets use.
    x = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(split_seed)).numpy()
    # Sorted so each split keeps the dataset's own order; only membership depends on the seed.
    test, train = np.sort(perm[:DIGITS_N_TEST]), np.sort(perm[DIGITS_N_TEST:])
    return {"train_x": x[train], "train_y": y[train], "test_x": x[test], "test_y": y[test],
            "classes": list(DIGIT_CLASSES)}
