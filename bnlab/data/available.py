"""Is a dataset on this machine? Asked when a config is read, before any job.

A scale may fall back to another dataset where its own is missing (the quick
scale trains seed 002's and seed 003's studies on MNIST where set-up could fetch
it, on Fashion-MNIST otherwise), and `make reproduce` leaves out the studies
whose data is not here. Both ask this one question; it only looks at files, it
reads nothing and downloads nothing.
"""

from __future__ import annotations

from pathlib import Path

from .sources import find_files


def dataset_available(name: str, data_dir: str | Path | None, results: str | Path, *,
                      download: bool = False) -> bool:
    """True where the dataset's prepared file exists, or a source (data_dir, a system folder, set-up's
    folder) holds its files, or the config lets torchvision download it (then a missing file is an error
    of the download, said by prepare_data, not a reason to train on something else)."""
    if name == "digits":  # ships with scikit-learn
        return True
    if (Path(results) / "data" / f"{name}.pt").exists():
        return True
    if find_files(name, Path(data_dir) if data_dir is not None else None, []) is not None:
        return True
    return download
