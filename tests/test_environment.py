"""The environment is the lock: set-up installs requirements.lock, and what is installed is what it pins."""

import re
from pathlib import Path

from bnlab.provenance import installed_packages

ROOT = Path(__file__).resolve().parents[1]
# what pip freeze leaves out of a lock (the installer's own tools) and bnlab itself (installed editable)
NOT_LOCKED = {"pip", "setuptools", "wheel", "bnlab"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not pinned with =="
            pins[normalise(name)] = version
    return pins


def test_the_installed_packages_are_the_lock():
    installed = {normalise(name): v for name, v in installed_packages() if normalise(name) not in NOT_LOCKED}
    pins = lock()
    extra = sorted(f"{n}=={v}" for n, v in installed.items() if n not in pins)
    missing = sorted(f"{n}=={v}" for n, v in pins.items() if n not in installed)
    other = sorted(f"{n}: installed {installed[n]}, locked {v}" for n, v in pins.items()
                   if n in installed and installed[n] != v)
    assert not (extra or missing or other), (
        f"the environment differs from requirements.lock (re-run ./setup.sh, or regenerate the lock as the "
        f"README says): not locked {extra}; not installed {missing}; other versions {other}")


def test_the_lock_holds_every_requirement_at_its_pinned_version():
    pins = lock()
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            name = normalise(name.split("[")[0])
            assert pins.get(name) == version, (name, version, pins.get(name))
    assert pins["weasyprint"] == "70.0"  # 66.0 is inside CVE-2026-55073
