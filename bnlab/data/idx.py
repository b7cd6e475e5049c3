"""Reader for the IDX format of MNIST / Fashion-MNIST (optionally gzipped).

Layout: 4-byte big-endian magic (0x0000 | type 0x08=uint8 | ndim), ndim big-endian
int32 sizes, then the uint8 data in row-major order. Read with one frombuffer call.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from .checksums import Check

IMAGES_MAGIC = 0x00000803  # uint8, 3 dims: [N, rows, cols]
LABELS_MAGIC = 0x00000801  # uint8, 1 dim:  [N]
_GZIP_SIGNATURE = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    # Trust the content rather than the suffix: some mirrors ship gzipped files without ".gz".
    if raw[:2] == _GZIP_SIGNATURE:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path}: corrupt gzip stream ({exc})") from exc
    return raw


def read_idx(path: str | Path, expected_magic: int, check: Check | None = None) -> np.ndarray:
    """Read one IDX file into a uint8 array; a malformed file raises ValueError naming it."""
    path = Path(path)
    buf = _read_bytes(path)
    if len(buf) < 4:
        raise ValueError(f"{path}: too short to be an IDX file ({len(buf)} bytes)")
    magic = int.from_bytes(buf[:4], "big")
    if magic != expected_magic:
        raise ValueError(
            f"{path}: bad IDX magic number 0x{magic:08x}, expected 0x{expected_magic:08x} "
            f"({'images' if expected_magic == IMAGES_MAGIC else 'labels'} file)"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise ValueError(f"{path}: truncated IDX header")
    dims = [int.from_bytes(buf[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    count = int(np.prod(dims))
    if len(buf) != header + count:
        raise ValueError(
            f"{path}: IDX header says dims {dims} ({count} bytes of data) "
            f"but the file holds {len(buf) - header} bytes after the header"
        )
    if check is not None:  # after parsing: the header's count is what says "published file"
        check(str(path), path.name.removesuffix(".gz"), buf, dims[0])
    # copy(): frombuffer views are read-only, and torch.from_numpy wants a writable array.
    return np.frombuffer(buf, dtype=np.uint8, count=count, offset=header).reshape(dims).copy()


def read_idx_split(images: str | Path, labels: str | Path,
                   check: Check | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read an images/labels pair: uint8 [N, 1, H, W] and int64 [N], checked to agree."""
    x = read_idx(images, IMAGES_MAGIC, check)
    y = read_idx(labels, LABELS_MAGIC, check)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{images} holds {x.shape[0]} images but {labels} holds {y.shape[0]} labels")
    return x[:, None, :, :], y.astype(np.int64)
