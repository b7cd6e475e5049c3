"""prepare_dataset: find a dataset's files, read them, split, and write the one cache file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .catalog import CIFAR_TARBALL, FASHION_MNIST_CLASSES, DIGIT_CLASSES, check_name
from .checksums import VERIFIED, check_file
from .cifar import read_cifar_folder, read_cifar_tarball
from .digits import read_digits
from .idx import read_idx_split
from .prepared import PreparedData, channel_stats, data_checksum, save_prepared
from .sources import DatasetUnavailable, Found, download_and_find, find_files, unavailable_message


def _read_found(name: str, found: Found) -> tuple[dict, list[dict]]:
    """Parse the files at a found location into numpy arrays and class names, checking each
    file against its published checksum (bnlab.data.checksums); also return their records."""
    records: list[dict] = []

    def check(where: str, file: str, content: bytes, count: int | None) -> None:
        records.append(check_file(name, file, where, content, count=count))

    if found.kind == "idx":
        train_x, train_y = read_idx_split(found.files["train_x"], found.files["train_y"], check)
        test_x, test_y = read_idx_split(found.files["test_x"], found.files["test_y"], check)
        classes = FASHION_MNIST_CLASSES if name == "fashion_mnist" else DIGIT_CLASSES
        return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y,
                "classes": list(classes)}, records
    if found.kind == "cifar_folder":
        return read_cifar_folder(found.path, check), records
    # The tarball as a whole first (its size is its claim), before 170 MB are unpacked;
    # its batches are then checked too, which is what catches a repacked, altered copy.
    records.append(check_file(name, CIFAR_TARBALL, str(found.path), found.path))
    return read_cifar_tarball(found.path, check), records


def _check_arrays(name: str, raw: dict, where: str) -> None:
    """Catch files that parse but cannot be this dataset (mismatched shapes, labels out of range)."""
    if raw["train_x"].shape[1:] != raw["test_x"].shape[1:]:
        raise ValueError(f"{where}: {name} train images are {raw['train_x'].shape[1:]} "
                         f"but test images are {raw['test_x'].shape[1:]}")
    k = len(raw["classes"])
    for split in ("train_y", "test_y"):
        y = raw[split]
        if y.size and (y.min() < 0 or y.max() >= k):
            raise ValueError(f"{where}: {name} {split} has labels in [{y.min()}, {y.max()}], "
                             f"expected 0..{k - 1}")


def split_indices(n_train: int, val_size: int, split_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded train/val split of range(n_train): (train_idx, val_idx), val first in the permutation."""
    if isinstance(val_size, bool) or not isinstance(val_size, int) or val_size < 0:
        raise ValueError(f"val_size must be a non-negative integer, got {val_size!r}")
    if val_size >= n_train:
        raise ValueError(f"val_size={val_size} must be smaller than the {n_train} training images; "
                         "lower val_size")
    perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(split_seed))
    return perm[val_size:].clone(), perm[:val_size].clone()  # clone: store each split alone, not a view


def prepare_dataset(name: str, out_path: str | Path, *, data_dir: str | Path | None = None,
                    val_size: int = 5000, split_seed: int = 0, download: bool = False,
                    log: Callable[[str], None] = print) -> dict:
    """Find `name`'s files (data_dir, system folders, the set-up folder, then download if
    allowed), check them against the published checksums, read and split them, write one
    cache file at out_path atomically, and return a short summary (with "files": each source
    file's path, SHA-256 and "verified" / "unverified: why").

    Raises DatasetUnavailable when no source has the files, ChecksumMismatch (a ValueError)
    for a file of the published size whose checksum differs, ValueError for malformed files
    or a val_size that does not fit.
    """
    check_name(name)
    start = time.perf_counter()
    out_path = Path(out_path)
    data_dir = Path(data_dir) if data_dir is not None else None

    files: list[dict] = []  # provenance of each source file read (none for digits)
    if name == "digits":
        raw, source = read_digits(split_seed), "scikit-learn load_digits() (bundled with the package)"
    else:
        searched: list[str] = []
        found = find_files(name, data_dir, searched)
        if found is None and download:
            # Into data_dir when given (so the next run finds it there), else beside the output.
            root = data_dir if data_dir is not None else out_path.parent / "downloads"
            log(f"[data] {name}: not found locally, downloading with torchvision into {root}")
            found = download_and_find(name, root, searched)
        if found is None:
            raise DatasetUnavailable(unavailable_message(name, searched, download, data_dir))
        log(f"[data] {name}: reading {found.description}")
        (raw, files), source = _read_found(name, found), found.description
        _check_arrays(name, raw, source)
        for r in files:
            if r["status"] != VERIFIED:
                log(f"[data] {name}: {r['path']}: {r['status']}")
        n_ok = sum(r["status"] == VERIFIED for r in files)
        log(f"[data] {name}: {n_ok} of {len(files)} files match their published checksums")

    train_idx, val_idx = split_indices(len(raw["train_y"]), val_size, split_seed)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(raw[k]))
               for k in ("train_x", "train_y", "test_x", "test_y")}
    mean, std = channel_stats(tensors["train_x"][train_idx])  # training part only: val stays unseen
    data = PreparedData(
        name=name, **tensors, train_idx=train_idx, val_idx=val_idx, mean=mean, std=std,
        classes=list(raw["classes"]), source=source,
        checksum=data_checksum(*(tensors[k] for k in ("train_x", "train_y", "test_x", "test_y"))),
        files=files,
    )
    save_prepared(data, out_path, extra={"split_seed": int(split_seed), "val_size": int(val_size)})
    summary = {"name": name, "source": source, "n_train": len(train_idx), "n_val": len(val_idx),
               "n_test": len(data.test_y), "shape": list(data.input_shape), "checksum": data.checksum,
               "files": files}
    log(f"[data] {name}: train {summary['n_train']} / val {summary['n_val']} / test {summary['n_test']}, "
        f"shape {tuple(summary['shape'])}, mean {[round(m, 4) for m in mean.tolist()]}, "
        f"wrote {out_path} in {time.perf_counter() - start:.1f}s")
    return summary
