"""Datasets for bnlab: find the official files, parse them, and cache one tensor file per dataset.

Training loads that file once and slices uint8 tensors by randperm: no DataLoader.

The names below are loaded on first use: bnlab.config (and every Snakemake job
that unpickles a study plan) needs the catalog and the limits, not torch.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what the names resolve to; bnlab.codegraph sees these edges (code inputs of jobs)
    from .catalog import DATASETS, display_name
    from .prepare import prepare_dataset
    from .prepared import PreparedData, load_prepared
    from .sources import DatasetUnavailable

_HOMES = {
    "DATASETS": "catalog", "display_name": "catalog",
    "prepare_dataset": "prepare",
    "PreparedData": "prepared", "load_prepared": "prepared",
    "DatasetUnavailable": "sources",
}
__all__ = ["DATASETS", "display_name", "DatasetUnavailable", "PreparedData", "load_prepared", "prepare_dataset"]


def __getattr__(name):
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(f"bnlab.data.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'bnlab.data' has no attribute {name!r}")
