"""The cached dataset file: what it holds, how it is written (atomically) and read back.

One file per dataset, loadable with torch.load(weights_only=True): only tensors,
str, int, float, lists and dicts are stored, so loading runs no pickled code.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

# Bump when the stored keys change meaning. Keys added with a default (files) keep the
# format: an older file simply lacks them and loads with the default.
FORMAT = "bnlab.prepared/1"


@dataclass
class PreparedData:
    """A dataset ready for training: full official splits as uint8 plus the train/val split."""

    name: str
    train_x: torch.Tensor    # uint8 [N, C, H, W], the full official training set
    train_y: torch.Tensor    # int64 [N]
    test_x: torch.Tensor     # uint8 [M, C, H, W]
    test_y: torch.Tensor     # int64 [M]
    train_idx: torch.Tensor  # int64 indices into train_x used for training
    val_idx: torch.Tensor    # int64 indices into train_x held out for validation
    mean: torch.Tensor       # float32 [C], of train_x[train_idx] / 255
    std: torch.Tensor        # float32 [C], same pixels (population std)
    classes: list[str]
    source: str              # where the files were read from
    checksum: str            # sha256 of train_x, train_y, test_x, test_y bytes
    # Per source file read: {"path", "sha256" (of the content read), "status": "verified" or
    # "unverified: <why>"} (bnlab.data.checksums). Empty for digits and for older cache files.
    files: list[dict] = field(default_factory=list)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_x.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def data_checksum(train_x: torch.Tensor, train_y: torch.Tensor,
                  test_x: torch.Tensor, test_y: torch.Tensor) -> str:
    """sha256 over the raw bytes of the four arrays, in that order (split-independent)."""
    h = hashlib.sha256()
    for t in (train_x, train_y, test_x, test_y):
        h.update(t.contiguous().numpy())  # buffer protocol: hashes in place, no bytes copy
    return h.hexdigest()


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and population std of uint8 images [N, C, H, W], scaled to [0, 1].

    Computed from a 256-bin histogram per channel: exact in float64 and needs no
    float copy of the images (CIFAR's would be 1.4 GB).
    """
    if x.shape[0] == 0:
        raise ValueError("cannot compute normalisation statistics of an empty training split")
    arr = x.numpy()
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for c in range(arr.shape[1]):
        counts = np.bincount(arr[:, c].ravel(), minlength=256).astype(np.float64)
        n = counts.sum()
        mean = (counts * values).sum() / n
        means.append(mean)
        stds.append(np.sqrt((counts * (values - mean) ** 2).sum() / n))
    return torch.tensor(means, dtype=torch.float32), torch.tensor(stds, dtype=torch.float32)


def save_prepared(data: PreparedData, out_path: str | Path, extra: dict | None = None) -> None:
    """Write the cache file atomically: a temp file in the same folder, fsync, then os.replace."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    payload = {f.name: getattr(data, f.name) for f in fields(data)}
    payload["classes"] = list(data.classes)
    payload["files"] = [dict(r) for r in data.files]
    payload.update(extra or {})
    payload["format"] = FORMAT
    # A unique temp name in the same folder (os.replace is atomic only within one file system);
    # opened with "xb" rather than mkstemp so the file gets the umask's mode, not 0600.
    tmp = out_path.parent / f".{out_path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "xb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())  # the rename must not land before the bytes do
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_prepared(path: str | Path, *, verify: bool = False) -> PreparedData:
    """Load a cache file written by prepare_dataset; verify=True re-hashes the data against its checksum."""
    path = Path(path)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path}: not a bnlab prepared-data file of format {FORMAT} (found {found!r}); "
                         "delete it and prepare the dataset again")
    names = [f.name for f in fields(PreparedData)]
    required = [f.name for f in fields(PreparedData) if f.default is MISSING and f.default_factory is MISSING]
    missing = [n for n in required if n not in payload]
    if missing:
        raise ValueError(f"{path}: missing keys {missing}; delete it and prepare the dataset again")
    data = PreparedData(**{n: payload[n] for n in names if n in payload})
    if verify:
        actual = data_checksum(data.train_x, data.train_y, data.test_x, data.test_y)
        if actual != data.checksum:
            raise ValueError(f"{path}: data checksum {actual} does not match the stored {data.checksum}; "
                             "the file is corrupt, prepare the dataset again")
    return data
