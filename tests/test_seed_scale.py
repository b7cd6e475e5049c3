"""The seed scale proven runnable: every study of config/full.yaml at toy size, through Snakemake to a PDF.

config/full.yaml is meant for a GPU or a cluster; nothing here can run it. This test runs all of it at
toy size (`shrink`: a few hundred images, the shortest cell one epoch, one seed) on small files in the
real MNIST, Fashion-MNIST and CIFAR-10 formats that it writes, with the GPU fusion policy's grouping
(fuse 8 of any fusible run), so that VGG-A, MiniGoogLeNet, ResNet-14, the fused groups, the landscape
probes at VGG size and every seed-scale analysis are code that has run, not code that was planned.
"""

from __future__ import annotations

import gzip
import json
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from bnlab.config import build_plan

ROOT = Path(__file__).resolve().parents[1]
IDX = {"train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
       "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte"}


def learnable_images(rng, n: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Images with a class signal (a template per class under noise), so training has something to learn."""
    templates = np.random.default_rng(99).integers(0, 256, (10, *shape))
    labels = rng.integers(0, 10, n)
    noise = rng.integers(0, 256, (n, *shape))
    return ((0.6 * templates[labels] + 0.4 * noise).astype(np.uint8)), labels.astype(np.uint8)


def write_idx(folder: Path, n_train: int, n_test: int, seed: int) -> None:
    """The four IDX files by the format's definition (big-endian magic and dims, uint8 data), gzipped."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    tx, ty = learnable_images(rng, n_train, (28, 28))
    sx, sy = learnable_images(rng, n_test, (28, 28))
    for key, arr in {"train_x": tx, "train_y": ty, "test_x": sx, "test_y": sy}.items():
        blob = struct.pack(">I", 0x0800 | arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
        (folder / f"{IDX[key]}.gz").write_bytes(gzip.compress(blob))


def write_cifar(folder: Path, per_batch: int, n_test: int, seed: int) -> None:
    """CIFAR-10's python version: 5 training batches and a test batch, pickled dicts with bytes keys, each
    row the R, G and B planes of a 32x32 image."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for b in range(6):
        n = per_batch if b < 5 else n_test
        images, labels = learnable_images(rng, n, (3, 32, 32))
        batch = {b"batch_label": b"toy", b"labels": labels.tolist(), b"data": images.reshape(n, -1),
                 b"filenames": [b"toy.png"] * n}
        (folder / (f"data_batch_{b + 1}" if b < 5 else "test_batch")).write_bytes(pickle.dumps(batch, protocol=2))


@pytest.mark.slow
def test_every_study_of_the_seed_scale_runs_at_toy_size(tmp_path):
    data = tmp_path / "data"
    write_idx(data / "mnist", 360, 120, seed=1)
    write_idx(data / "fashion_mnist", 360, 120, seed=2)
    write_cifar(data / "cifar-10-batches-py", 72, 120, seed=3)
    config = yaml.safe_load((ROOT / "config/full.yaml").read_text())
    config.update(results=str(tmp_path / "results"),
                  data={"data_dir": str(data), "download": False, "val_size": 100, "split_seed": 0},
                  execution={"device": "cpu", "threads_per_run": 1, "fuse": 8},  # the GPU policy's grouping
                  shrink={"train_images": 256, "epochs": 1, "seeds": 1})
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(config))
    plan = build_plan(yaml.safe_load(path.read_text()))
    assert list(plan.studies) == yaml.safe_load((ROOT / "config/library.yaml").read_text())["order"]
    out = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=2400)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]

    results = tmp_path / "results"
    assert (results / "report.pdf").stat().st_size > 100_000
    metrics = {r.relative_dir(): json.loads((results / "runs" / r.relative_dir() / "metrics.json").read_text())
               for r in plan.runs}
    # every model of the seed scale trained: VGG-A, MiniGoogLeNet, ResNet-14 among them
    models = {r.model for r in plan.runs}
    assert {"vgg_a", "minigooglenet", "resnet", "lenet5", "cnn", "cnn2", "mlp"} <= models
    assert {r.model for r in plan.runs if metrics[r.relative_dir()]["steps"] > 0} == models
    # the GPU fusion policy's groups trained: some conv runs as one fused model, several groups
    fused = [m["fused"] for m in metrics.values() if m.get("fused")]
    assert len({f["group"] for f in fused}) >= 3 and max(f["members"] for f in fused) > 1
    assert any(metrics[r.relative_dir()].get("fused") for r in plan.runs if r.model == "cnn")
    # the landscape probes ran at VGG size
    import pandas as pd

    vgg = [r for r in plan.studies["landscape"].runs]
    assert all(r.model == "vgg_a" for r in vgg)
    assert all(len(pd.read_parquet(results / "runs" / r.relative_dir() / "probes.parquet")) for r in vgg)
    # every analysis of every study wrote its fragment
    for name, study in plan.studies.items():
        for analysis in study.analyses:
            assert (results / "studies" / name / analysis / "fragment.json").is_file(), (name, analysis)
    # the report says it is a toy
    from pypdf import PdfReader

    first = PdfReader(results / "report.pdf").pages[0].extract_text()
    assert "TOY SIZE" in first
