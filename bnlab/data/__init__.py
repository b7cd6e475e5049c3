"""Datasets for bnlab: find the official files, parse them, and cache one tensor file per dataset.

Training loads that file once and slices uint8 tensors by randperm: no DataLoader.
"""

from .catalog import DATASETS, display_name
from .prepare import prepare_dataset
from .prepared import PreparedData, load_prepared
from .sources import DatasetUnavailable

__all__ = ["DATASETS", "display_name", "DatasetUnavailable", "PreparedData", "load_prepared", "prepare_dataset"]
