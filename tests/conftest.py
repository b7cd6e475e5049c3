"""Shared fixtures: a prepared digits dataset (scikit-learn ships it, so tests run offline)."""

import pytest

from bnlab.config import load_schema, resolve_run
from bnlab.data import prepare_dataset


@pytest.fixture(scope="session")
def digits_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "digits.pt"
    prepare_dataset("digits", path, val_size=300, split_seed=0, log=lambda _: None)
    return path


@pytest.fixture
def make_spec():
    """RunSpec from schema defaults on digits, with overrides."""
    defaults = {k: v["default"] for k, v in load_schema()["$defs"]["run"]["properties"].items()}

    def make(**overrides):
        params = {**defaults, "dataset": "digits", "widths": [32, 32], "epochs": 2, "batch_size": 64}
        params.update(overrides)
        return resolve_run(params)

    return make
