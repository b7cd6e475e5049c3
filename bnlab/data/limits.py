"""Config values that only the data can refuse: validation and batch sizes against image counts.

The schema knows that batch_size is a positive integer; only the dataset knows
that digits has 1437 training images. check_data_limits() compares every run of
a plan with the known sizes (catalog.TRAIN_IMAGES) before any job starts, so a
batch of 100000 is refused with the field named instead of silently training at
the size of the training set.

Base layer: imports bnlab.data, bnlab.params and bnlab.model_inputs only (bnlab.config calls it).
The model against the images: a LeNet-5 on 8x8 digits is refused here, naming the study.
"""

from __future__ import annotations

from typing import Any, Mapping

from bnlab.model_inputs import MIN_INPUT_SIDE, min_input_side
from bnlab.params import RunSpec

from .catalog import DATASETS, INPUT_SHAPES, TRAIN_IMAGES, display_name

DEFAULT_KEY = "default"  # the key of a data.val_size mapping that stands for every other dataset


class DataLimitError(ValueError):
    """A config value that does not fit the data; the message names the field and the numbers."""


def val_size_for(config_data: Mapping[str, Any], dataset: str) -> int:
    """The validation images held out of `dataset`'s training file.

    config_data is the config's `data` section; its val_size is a number (every
    dataset) or a mapping dataset -> number with an optional 'default' key.
    """
    value = config_data["val_size"]
    if isinstance(value, Mapping):
        if dataset in value:
            return int(value[dataset])
        if DEFAULT_KEY in value:
            return int(value[DEFAULT_KEY])
        raise DataLimitError(f"config error at 'data.val_size': no entry for dataset '{dataset}' and no "
                             f"'{DEFAULT_KEY}'; add {dataset}: <images> or {DEFAULT_KEY}: <images>")
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataLimitError(f"config error at 'data.val_size': expected a number or a mapping, got {value!r}")
    return value


def _val_size_field(config_data: Mapping[str, Any], dataset: str) -> str:
    """Where a dataset's val_size is written: data.val_size, data.val_size.<dataset> or .default."""
    value = config_data["val_size"]
    if not isinstance(value, Mapping):
        return "data.val_size"
    return f"data.val_size.{dataset if dataset in value else DEFAULT_KEY}"


def training_split(config_data: Mapping[str, Any], run: RunSpec) -> tuple[int, str]:
    """(images a run trains on, how that number comes about, in words).

    The training file less val_size, or the first train_subset of those when
    train_subset is set (bnlab.train.tensors.device_splits). Call check_val_size
    first: the split is assumed non-empty.
    """
    n_file, val = TRAIN_IMAGES[run.dataset], val_size_for(config_data, run.dataset)
    split = n_file - val
    how = f"{n_file} minus val_size {val}"
    if 0 < run.train_subset < split:
        return run.train_subset, f"train_subset {run.train_subset} of {split} = {how}"
    return split, how


# Largest validation hold-out the prepare_data job takes per dataset: it holds
# out at most 300 of digits' 1437 training images (scripts/prepare_data.py), so a
# larger value is refused here rather than changed there without a word.
MAX_VAL_SIZE = {"digits": 300}


def check_val_size(config_data: Mapping[str, Any], dataset: str, used_by: str = "") -> None:
    """val_size must leave training images: smaller than the dataset's training file (and within its cap)."""
    n_file, val = TRAIN_IMAGES[dataset], val_size_for(config_data, dataset)
    if val >= n_file:
        users = f" (used by {used_by})" if used_by else ""
        raise DataLimitError(
            f"config error at '{_val_size_field(config_data, dataset)}' (val_size: {val}): not smaller than the "
            f"{n_file} training images of {display_name(dataset)}{users}; hold out fewer (val_size may be set "
            f"per dataset, e.g. data.val_size: {{{dataset}: {max(1, round(n_file / 5, -2))}, {DEFAULT_KEY}: 5000}})")
    cap = MAX_VAL_SIZE.get(dataset)
    if cap is not None and val > cap:
        raise DataLimitError(
            f"config error at '{_val_size_field(config_data, dataset)}' (val_size: {val}): {display_name(dataset)} "
            f"holds out at most {cap} of its {n_file} training images for validation; set val_size per dataset, "
            f"e.g. data.val_size: {{{dataset}: {cap}, {DEFAULT_KEY}: 5000}}")


def check_input_size(run: RunSpec, where: str) -> None:
    """The model's convolutions and pools must fit the dataset's images."""
    _, height, width = INPUT_SHAPES[run.dataset]
    need = min_input_side(run.model)
    if min(height, width) < need:
        takes = sorted(m for m in MIN_INPUT_SIDE if min_input_side(m) <= min(height, width))
        larger = [d for d in DATASETS if min(INPUT_SHAPES[d][1:]) >= need]
        raise DataLimitError(
            f"config error at '{where}' (model: {run.model}, dataset: {run.dataset}): {run.model} needs images of "
            f"at least {need}x{need} pixels and {display_name(run.dataset)} has {height}x{width}; use a dataset "
            f"with larger images ({', '.join(larger)}) or a model that takes {height}x{width} ({', '.join(takes)})")


def check_run(config_data: Mapping[str, Any], run: RunSpec, where: str) -> None:
    """The model against the images' size; train_subset, batch_size and (when the batch grows)
    batch_growth_max against the training split."""
    check_input_size(run, where)
    n_file, val = TRAIN_IMAGES[run.dataset], val_size_for(config_data, run.dataset)
    name = display_name(run.dataset)
    if run.train_subset > n_file - val:
        raise DataLimitError(
            f"config error at '{where}' (train_subset: {run.train_subset}): larger than the {n_file - val} "
            f"training images of {name} ({n_file} minus val_size {val})")
    n, how = training_split(config_data, run)
    if run.batch_size > n:
        raise DataLimitError(f"config error at '{where}' (batch_size: {run.batch_size}): larger than the {n} "
                             f"training images of {name} ({how})")
    # via "lr" too: its lr decay is matched to a growth up to batch_growth_max
    if run.grows and int(run.batch_growth_max) > n:
        raise DataLimitError(
            f"config error at '{where}' (batch_growth_max: {run.batch_growth_max}): larger than the {n} "
            f"training images of {name} ({how}); a batch cannot grow past the training set")


def check_data_limits(config: Mapping[str, Any], studies: Mapping[str, Any]) -> None:
    """Refuse values that do not fit the data, before any job: raises DataLimitError.

    config: the validated config (its `data` section is read); studies: name ->
    object with .runs (RunSpecs), as bnlab.config expands them.
    """
    data = config["data"]
    users: dict[str, list[str]] = {}
    for name, study in studies.items():
        for run in study.runs:
            users.setdefault(run.dataset, [])
            if name not in users[run.dataset]:
                users[run.dataset].append(name)
    # An explicit entry of a val_size mapping is checked even for a dataset no study uses.
    value = data["val_size"]
    named = [d for d in DATASETS if isinstance(value, Mapping) and d in value]
    for dataset in [d for d in DATASETS if d in users or d in named]:
        check_val_size(data, dataset, ", ".join(f"studies.{s}" for s in users.get(dataset, [])))
    for name, study in studies.items():
        for run in study.runs:
            check_run(data, run, f"studies.{name}")
