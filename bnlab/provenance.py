"""Where a result came from: code version, library versions, hardware."""

from __future__ import annotations

import os
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIBRARIES = ("torch", "numpy", "pandas", "pyarrow", "matplotlib", "seaborn", "snakemake", "weasyprint", "jinja2", "scikit-learn")


@lru_cache(maxsize=1)
def code_version() -> str:
    """git commit of the bnlab checkout (+'-dirty' with local edits), else the package version."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        from bnlab import __version__

        return f"bnlab-{__version__}"


def library_versions(names=LIBRARIES) -> dict[str, str]:
    """Installed versions (a copy of a cached answer: a fork of the warm server inherits it)."""
    return dict(_library_versions(tuple(names)))


@lru_cache(maxsize=4)
def _library_versions(names: tuple[str, ...]) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


@lru_cache(maxsize=1)
def installed_packages() -> tuple[tuple[str, str], ...]:
    """Every distribution installed in this environment, (name, version), sorted by name: what the
    report's provenance appendix lists and the lock file (requirements.lock) pins."""
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found[name] = dist.version
    return tuple(sorted(found.items(), key=lambda item: item[0].lower()))


@lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict[str, str | int]:
    info: dict[str, str | int] = {"cpu": cpu_model(), "cpu_count": os.cpu_count() or 0, "machine": platform.machine()}
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["cuda"] = str(torch.version.cuda)
            info["cudnn"] = str(torch.backends.cudnn.version())
            driver = nvidia_driver()
            if driver:
                info["driver"] = driver
    except Exception:  # hardware info is best effort, never a reason to fail
        pass
    return info


@lru_cache(maxsize=1)
def nvidia_driver() -> str | None:
    """The NVIDIA driver's version from nvidia-smi, or None where there is none."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return out[0] if out else None
