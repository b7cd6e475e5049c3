"""Reader for CIFAR-10's "python version": pickled batches in a folder or in the tarball.

Each batch is a dict with b"data" (uint8 [N, 3072]: the R, G, B planes of a 32x32
image, each row-major) and b"labels" (list of int); batches.meta has b"label_names".
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .catalog import CIFAR10_CLASSES, CIFAR_META, CIFAR_TEST_BATCH, CIFAR_TRAIN_BATCHES
from .checksums import Check

# The batches are pickles, and a data_dir may hold files from anywhere: only the
# globals a numpy-array pickle needs may be resolved, so a crafted file cannot run code.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol 2 spells bytes when written by Python 3
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing global {module}.{name} in a CIFAR-10 batch")
        return super().find_class(module, name)


def _unpickle(data: bytes, where: str) -> dict:
    try:
        # encoding="bytes": the original batches were pickled by Python 2, keys come back as bytes.
        obj = _SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:  # any pickle failure is a bad file, reported by name
        raise ValueError(f"{where}: not a readable CIFAR-10 batch pickle ({exc})") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a dict, found {type(obj).__name__}")
    return obj


def _batch_arrays(batch: dict, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        data, labels = batch[b"data"], batch[b"labels"]
    except KeyError as exc:
        raise ValueError(f"{where}: missing key {exc.args[0]!r} (need b'data' and b'labels')") from None
    x = np.asarray(data, dtype=np.uint8) if not isinstance(data, (bytes, bytearray)) \
        else np.frombuffer(data, dtype=np.uint8)
    if x.size % 3072 != 0 or (x.ndim == 2 and x.shape[1] != 3072):
        raise ValueError(f"{where}: b'data' has shape {x.shape}, expected [N, 3072]")
    x = x.reshape(-1, 3, 32, 32)  # [N, 3072] -> [N, C=3, H=32, W=32]: planes then rows
    y = np.asarray(labels, dtype=np.int64)
    if y.shape != (x.shape[0],):
        raise ValueError(f"{where}: {x.shape[0]} images but {y.size} labels")
    return x, y


def _read(get: Callable[[str], bytes | None], where: Callable[[str], str], check: Check | None) -> dict:
    """Assemble the splits from a `get(member) -> bytes or None` accessor (folder or tar).

    check(where, member, bytes, images) is called for each file read (see bnlab.data.checksums).
    """
    parts = []
    for member in (*CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH):
        data = get(member)
        if data is None:
            raise ValueError(f"{where(member)}: missing CIFAR-10 batch")
        x, y = _batch_arrays(_unpickle(data, where(member)), where(member))
        if check is not None:  # after parsing: the batch's image count is what says "published file"
            check(where(member), member, data, x.shape[0])
        parts.append((x, y))
    train_x = np.concatenate([p[0] for p in parts[:-1]])
    train_y = np.concatenate([p[1] for p in parts[:-1]])
    classes = list(CIFAR10_CLASSES)
    meta = get(CIFAR_META)
    if meta is not None:
        if check is not None:
            check(where(CIFAR_META), CIFAR_META, meta, None)
        names = _unpickle(meta, where(CIFAR_META)).get(b"label_names")
        if names:
            classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    return {"train_x": np.ascontiguousarray(train_x), "train_y": train_y,
            "test_x": np.ascontiguousarray(parts[-1][0]), "test_y": parts[-1][1], "classes": classes}


def read_cifar_folder(folder: str | Path, check: Check | None = None) -> dict:
    """Read the extracted cifar-10-batches-py folder into train/test arrays and class names."""
    folder = Path(folder)

    def get(member: str) -> bytes | None:
        path = folder / member
        return path.read_bytes() if path.is_file() else None

    return _read(get, lambda m: str(folder / m), check)


def read_cifar_tarball(tarball: str | Path, check: Check | None = None) -> dict:
    """Read the batches straight out of cifar-10-python.tar.gz, without extracting it."""
    tarball = Path(tarball)
    wanted = {*CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH, CIFAR_META}
    blobs: dict[str, bytes] = {}
    try:
        # One pass over the stream: random access into a .gz re-decompresses from the start.
        with tarfile.open(tarball, "r:*") as tar:
            for info in tar:
                base = Path(info.name).name  # the official tar nests them in cifar-10-batches-py/
                if info.isfile() and base in wanted:
                    blobs[base] = tar.extractfile(info).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ValueError(f"{tarball}: not a readable tar archive ({exc})") from exc
    return _read(blobs.get, lambda m: f"{tarball}[{m}]", check)
