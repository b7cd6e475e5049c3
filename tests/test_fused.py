"""Fused training (execution.fuse): K runs as one fused model give the K runs' own results.

Tolerance: the fused net computes the same float32 sums in another order
(a grouped convolution, one batched matmul, one BN over K*C channels), so
histories agree to rtol 1e-4 / atol 1e-5 after two epochs; accuracies are
counts of correct images and must be equal or off by at most one image.
Dropout masks are the member's own generator's and equal the unfused run's
on the CPU, so runs with dropout are compared the same way.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from bnlab.data import prepare_dataset
from bnlab.fusion import FUSIBLE_MODELS, FusedGroup, fused_groups, fusion_policy, unfusible_reason
from bnlab.models import create_model, list_models
from bnlab.models.fused import FusedNet
from bnlab.train import checkpoint as checkpoint_module
from bnlab.train.run import execute_fused
from bnlab.train.run import execute_run

RTOL, ATOL = 1e-4, 1e-5


def quiet(_line: str) -> None:
    pass


@pytest.fixture(scope="module")
def mnist_like_path(tmp_path_factory):
    """A prepared MNIST-format dataset of 28x28 images (IDX files as the format defines them)."""
    import gzip
    import struct

    folder = tmp_path_factory.mktemp("mnist_src") / "mnist"
    folder.mkdir()
    rng = np.random.default_rng(5)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (400, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte": rng.integers(0, 10, 400, dtype=np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (100, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, 100, dtype=np.uint8)}
    for name, arr in arrays.items():
        blob = struct.pack(">I", 0x0800 | arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
        (folder / f"{name}.gz").write_bytes(gzip.compress(blob))
    out = tmp_path_factory.mktemp("mnist") / "mnist.pt"
    prepare_dataset("mnist", out, data_dir=folder.parent, val_size=100, split_seed=0, log=quiet)
    return out


def _read(folder):
    return {
        "history": pd.read_parquet(folder / "history.parquet"),
        "steps": pd.read_parquet(folder / "steps.parquet"),
        "bn": pd.read_parquet(folder / "bn_params.parquet"),
        "metrics": json.loads((folder / "metrics.json").read_text()),
        "coadaptation": json.loads((folder / "coadaptation.json").read_text()),
    }


def _assert_same_run(fused, alone, rtol=RTOL):
    atol = ATOL * rtol / RTOL  # a looser rtol (a chaotic member, below) loosens atol alike
    fm, am = fused["metrics"], alone["metrics"]
    assert (fm["status"], fm["diverged_step"], fm["steps"]) == (am["status"], am["diverged_step"], am["steps"])
    fh, ah = fused["history"], alone["history"]
    assert list(fh.split) == list(ah.split) and list(fh.step) == list(ah.step)
    finite = np.isfinite(ah.loss.to_numpy())
    np.testing.assert_array_equal(np.isfinite(fh.loss.to_numpy()), finite)
    np.testing.assert_allclose(fh.loss.to_numpy()[finite], ah.loss.to_numpy()[finite], rtol=rtol, atol=atol)
    # accuracy: equal, or one image apart where a logit tie breaks the other way
    assert np.all(np.abs(fh.acc.to_numpy() - ah.acc.to_numpy()) * ah.images.to_numpy() <= 1 + 1e-9)
    np.testing.assert_allclose(fh.lr, ah.lr, rtol=1e-12)
    fs, as_ = fused["steps"], alone["steps"]
    for column in ("loss", "grad_norm", "last_grad_change"):
        np.testing.assert_allclose(fs[column].to_numpy(), as_[column].to_numpy(), rtol=rtol, atol=atol,
                                   equal_nan=True, err_msg=column)
    np.testing.assert_allclose(fs.lr, as_.lr, rtol=1e-12)
    assert len(fused["bn"]) == len(alone["bn"])
    if len(alone["bn"]):
        np.testing.assert_allclose(fused["bn"][["gamma", "beta"]].to_numpy(), alone["bn"][["gamma", "beta"]].to_numpy(),
                                   rtol=rtol, atol=atol)
    fc, ac = fused["coadaptation"], alone["coadaptation"]  # the final member alone again (bnlab.train.run)
    assert fc["computed"] == ac["computed"] and len(fc["layers"]) == len(ac["layers"])
    for f_layer, a_layer in zip(fc["layers"], ac["layers"]):
        counts = ("index", "name", "units", "dead_units", "nonfinite_units", "live_units", "pairs")
        assert [f_layer[c] for c in counts] == [a_layer[c] for c in counts]
        np.testing.assert_allclose(f_layer["mean_abs_corr"], a_layer["mean_abs_corr"], rtol=rtol, atol=atol)


def _fused_vs_alone(tmp_path, data_path, specs, **kwargs):
    fused_dirs = [tmp_path / "fused" / s.relative_dir() for s in specs]
    execute_fused(specs, data_path, fused_dirs, log=quiet, group="test", **kwargs)
    for spec, fused_dir in zip(specs, fused_dirs):
        alone_dir = tmp_path / "alone" / spec.relative_dir()
        execute_run(spec, data_path, alone_dir, log=quiet)
        yield spec, _read(fused_dir), _read(alone_dir)


def test_fused_mlp_with_bn_and_dropout_gives_each_run_alone(tmp_path, digits_path, make_spec):
    base = dict(model="mlp", widths=[32, 32], bn="hidden", dropout_in=0.2, dropout_hidden=0.3, epochs=2)
    specs = [make_spec(**base, seed=0),
             make_spec(**base, seed=1, init="xavier", lr=3e-3),
             make_spec(**{**base, "dropout_hidden": 0.5}, seed=2, optimizer="sgd", lr=0.05, momentum=0.9, l2=1e-3)]
    for spec, fused, alone in _fused_vs_alone(tmp_path, digits_path, specs):
        _assert_same_run(fused, alone)
        assert fused["metrics"]["fused"]["members"] == 3
        assert alone["metrics"].get("fused") is None
        # each member's seconds are its share of the group's, so a study's seconds add up to the compute
        group = fused["metrics"]["fused"]["group_train_seconds"]
        assert group > 0 and fused["metrics"]["train_seconds"] == pytest.approx(group / 3)


@pytest.mark.parametrize("via", ["batch", "lr"])
def test_fused_members_with_batch_growth_eval_subsets_and_coadaptation_give_each_run_alone(
        tmp_path, digits_path, make_spec, via):
    # what the fused path accepts beyond the first test's: a growing batch (or its lr decay), a training
    # subset, curve points on an evaluation subset, the co-adaptation proxy (an instrument declared
    # fusable, bnlab/instruments.py), weight decay beside an L2 term
    base = dict(model="mlp", widths=[32, 32], bn="hidden", dropout_hidden=0.3, epochs=2, batch_size=16,
                batch_growth_every=8, batch_growth_max=128, batch_growth_via=via, train_subset=800, eval_size=100,
                evals_per_epoch=2, coadapt=True)
    # member 0 on SGD: Adam's seed 0 at batch 16 turns a rounding difference into a step (the lenet5 test's
    # note) and drifts to 7e-4 in gradient norm; SGD and this AdamW member stay within 2e-7 of the runs alone
    specs = [make_spec(**base, seed=0, optimizer="sgd", lr=0.05, momentum=0.9),
             make_spec(**base, seed=1, init="xavier", lr=3e-3, optimizer="adamw", weight_decay=1e-2, l2=1e-4)]
    assert [unfusible_reason(s) for s in specs] == [None, None]
    for spec, fused, alone in _fused_vs_alone(tmp_path, digits_path, specs):
        _assert_same_run(fused, alone)
        assert fused["metrics"]["fused"]["members"] == 2
        assert fused["metrics"]["final_batch_size"] == (128 if via == "batch" else 16)
        assert fused["metrics"]["eval_images"]["val"] == 100
        assert 2 * 700 < fused["metrics"]["samples"] == alone["metrics"]["samples"] <= 2 * 800  # the subset
        assert fused["coadaptation"]["computed"] and fused["coadaptation"]["images"] == 100


def _layout_sensitivity(spec, data_path, tmp_path, monkeypatch) -> float:
    """How far the run alone moves when only its memory layout changes (channels-last against contiguous):
    the float-level chaos of this setting on this CPU, which no comparison of summation orders can beat."""
    from bnlab.train import run as run_module

    fast = tmp_path / "layout-fast" / spec.relative_dir()
    plain = tmp_path / "layout-plain" / spec.relative_dir()
    execute_run(spec, data_path, fast, log=quiet)
    with monkeypatch.context() as patch:
        patch.setattr(run_module, "fast_layout", lambda model, splits: (model, splits))
        execute_run(spec, data_path, plain, log=quiet)
    a, b = (pd.read_parquet(f / "steps.parquet").grad_norm.to_numpy() for f in (fast, plain))
    return float(np.max(np.abs(a - b) / np.abs(b)))


def test_fused_lenet5_gives_each_run_alone(tmp_path, mnist_like_path, make_spec, monkeypatch):
    # SGD: a grouped convolution rounds differently from K separate ones, and Adam's first steps are
    # nearly sign(gradient), which turns a rounding difference in a near-zero gradient component into a
    # full step; SGD's update is proportional to the gradient, so the runs stay within RTOL
    base = dict(dataset="mnist", model="lenet5", widths="default", bn="hidden", epochs=2, batch_size=50,
                optimizer="sgd")
    # With random labels some settings are chaotic at float precision, and which ones depends on the CPU's
    # kernels: the first spec below moves by under 1e-6 between channels-last and contiguous layouts on one
    # development machine and by 3.3e-3 in gradient norm on another (AMD EPYC). So each member's own layout
    # sensitivity is measured: a member that moves by under 1e-6 that way must match within RTOL (a larger
    # difference is the fusion's), a chaotic one within 10 times its own sensitivity, and at least two of
    # the three must be of the first kind, or the test says nothing.
    specs = [make_spec(**base, seed=0, lr=0.01, momentum=0.5),
             make_spec(**base, seed=1, lr=0.01, momentum=0.0, lr_schedule="triangular", lr_min=1e-3, lr_period=1),
             make_spec(**base, seed=3, init="kaiming", lr=0.02, momentum=0.5)]
    sensitivity = {s.seed: _layout_sensitivity(s, mnist_like_path, tmp_path, monkeypatch) for s in specs}
    assert sum(v <= 1e-6 for v in sensitivity.values()) >= 2, sensitivity
    for spec, fused, alone in _fused_vs_alone(tmp_path, mnist_like_path, specs):
        s = sensitivity[spec.seed]
        _assert_same_run(fused, alone, rtol=RTOL if s <= 1e-6 else 10 * s)


@pytest.mark.parametrize("eval_test", ["final", "every"])
def test_a_diverging_member_stops_while_the_others_train_on(tmp_path, digits_path, make_spec, eval_test):
    # with eval_test: every the diverged member's last rows come in the order the run alone writes them too
    base = dict(model="mlp", widths=[32, 32], optimizer="sgd", momentum=0.0, epochs=2, eval_test=eval_test)
    specs = [make_spec(**base, seed=0, lr=0.05), make_spec(**base, seed=1, lr=1e4), make_spec(**base, seed=2, lr=0.1)]
    results = list(_fused_vs_alone(tmp_path, digits_path, specs))
    statuses = [fused["metrics"]["status"] for _, fused, _ in results]
    assert statuses == ["ok", "diverged", "ok"]
    diverged = results[1][1]["metrics"]
    assert diverged["steps"] < results[0][1]["metrics"]["steps"]  # stopped early, the others did not
    for spec, fused, alone in results:
        _assert_same_run(fused, alone)


@pytest.mark.parametrize("at", ["mid-epoch", "epoch boundary", "between two members' saves"])
def test_a_killed_fused_group_resumes_to_the_same_results(tmp_path, digits_path, make_spec, monkeypatch, at):
    # A checkpoint on an epoch boundary is taken before the epoch's end is processed (new order drawn, BN
    # snapshot): resuming from it must draw the next epoch's order, not reuse the finished epoch's.
    # Members are saved one after another: a kill between two of those saves leaves the first member a
    # checkpoint ahead, and the group resumes from the step before, where every member has one.
    base = dict(model="mlp", widths=[32, 32], bn="hidden", dropout_hidden=0.3, epochs=3)
    specs = [make_spec(**base, seed=0), make_spec(**base, seed=1, lr=3e-3)]
    whole = [tmp_path / "whole" / s.relative_dir() for s in specs]
    execute_fused(specs, digits_path, whole, log=quiet)
    per_epoch = json.loads((whole[0] / "metrics.json").read_text())["steps_per_epoch"]
    every = per_epoch if at == "epoch boundary" else 7
    assert (every % per_epoch == 0) == (at == "epoch boundary")
    kill_at = len(specs) + 1 if at == "between two members' saves" else len(specs)

    saved = {"n": 0}
    real_saved = checkpoint_module.CheckpointPolicy.saved

    def kill_after_first_group_save(self):
        real_saved(self)
        saved["n"] += 1
        if saved["n"] == kill_at:  # the job dies here
            raise KeyboardInterrupt

    killed = [tmp_path / "killed" / s.relative_dir() for s in specs]
    monkeypatch.setattr(checkpoint_module.CheckpointPolicy, "saved", kill_after_first_group_save)
    with pytest.raises(KeyboardInterrupt):
        execute_fused(specs, digits_path, killed, log=quiet, checkpoint_every_steps=every)
    monkeypatch.setattr(checkpoint_module.CheckpointPolicy, "saved", real_saved)
    assert all((d / "checkpoint.pt").exists() and not (d / "metrics.json").exists() for d in killed)
    lines = []
    execute_fused(specs, digits_path, killed, log=lines.append, checkpoint_every_steps=every)
    assert any(f"resumed 2 of 2 fused runs from checkpoints at step {every}" in line for line in lines)
    for w, k in zip(whole, killed):
        a, b = _read(w), _read(k)
        assert b["metrics"]["resumed_from_step"] == every
        pd.testing.assert_frame_equal(a["steps"], b["steps"])
        cols = ["split", "step", "loss", "acc"]
        pd.testing.assert_frame_equal(a["history"][cols], b["history"][cols])
        pd.testing.assert_frame_equal(a["bn"], b["bn"])
        assert not (k / "checkpoint.pt").exists()


# -- grouping (torch-free planning) ----------------------------------------------------------

def test_runs_fuse_when_only_member_settings_differ(make_spec):
    a, b = make_spec(seed=0), make_spec(seed=1, lr=3e-3, init="xavier", dropout_hidden=0.0)
    wider = make_spec(seed=0, widths=[64, 64])
    probed = make_spec(seed=2, probe_every=5, probe_etas=3)
    groups = fused_groups([a, b, wider, probed], max_members=8)
    assert [sorted(r.seed for r in g.runs) for g in groups] == [[0, 1]]
    assert unfusible_reason(probed) == "loss-landscape probes"
    assert fused_groups([a, b], max_members=1) == []
    # dropout rates may differ, but a zero rate is another architecture (no dropout layer)
    assert len(fused_groups([make_spec(seed=0, dropout_hidden=0.2), make_spec(seed=1, dropout_hidden=0.5),
                             make_spec(seed=2)], max_members=8)) == 1


def test_groups_are_cut_into_equal_shares_with_stable_names(make_spec):
    runs = [make_spec(seed=s) for s in range(9)]
    groups = fused_groups(runs, max_members=8)
    assert [len(g.runs) for g in groups] == [5, 4]
    again = fused_groups(list(reversed(runs)), max_members=8)
    assert [g.name for g in groups] == [g.name for g in again]
    assert all(g.name.startswith("fused_") and g.name.isidentifier() for g in groups)
    assert FusedGroup(groups[0].runs).name == groups[0].name


def test_a_group_keeps_its_name_and_members_when_other_groups_finish(make_spec):
    # A cluster job reads the workflow again on its node, after other groups may have finished: its rule
    # (the group's name) must still exist there. 19 runs at most 8 a job are 7 + 7 + 5 whatever is done.
    runs = [make_spec(seed=s) for s in range(19)]
    planned = fused_groups(runs, max_members=8)
    assert [len(g.runs) for g in planned] == [7, 7, 5]
    nothing_done = [g.left_to_train(lambda r: False) for g in planned]
    assert [g.name for g in nothing_done] == [g.name for g in planned]
    first_done = {r.relative_dir() for r in planned[0].runs}
    left = [g.left_to_train(lambda r: r.relative_dir() in first_done) for g in planned]
    assert left[0] is None  # finished: no job, no rule
    assert [(g.name, g.runs) for g in left[1:]] == [(g.name, g.runs) for g in planned[1:]]
    # a group partly written (its job died between members) trains only what is left, under its name
    done = {planned[1].runs[0].relative_dir(), planned[1].runs[1].relative_dir()}
    partly = planned[1].left_to_train(lambda r: r.relative_dir() in done)
    assert partly.name == planned[1].name and partly.runs == planned[1].runs[2:]
    # one run left trains as itself (rule train)
    assert planned[2].left_to_train(lambda r: r != planned[2].runs[-1]) is None


def test_fuse_auto_fuses_everything_on_cuda_and_small_mlps_on_a_cpu(make_spec):
    assert fusion_policy({"fuse": "auto", "device": "cuda"}) == (8, False)
    assert fusion_policy({"fuse": "auto", "device": "cpu"}) == (16, True)
    assert fusion_policy({"fuse": 4, "device": "cpu"}) == (4, False)
    # device auto: the GPU policy where the jobs ask for a GPU (full.yaml), the CPU one where they do not
    assert fusion_policy({"fuse": "auto", "device": "auto", "gpus_per_run": 1}) == (8, False)
    assert fusion_policy({"fuse": "auto", "device": "auto", "gpus_per_run": 0}) == (16, True)
    narrow = [make_spec(seed=s, widths=[50, 50]) for s in range(3)]
    wide = [make_spec(seed=s, widths=[256, 50]) for s in range(3)]
    convs = [make_spec(seed=s, model="cnn2", widths="default") for s in range(3)]
    on_cpu = fused_groups(narrow + wide + convs, *fusion_policy({"fuse": "auto", "device": "cpu"}))
    assert [len(g.runs) for g in on_cpu] == [3] and all(r.widths == "50x50" for r in on_cpu[0].runs)
    assert len(fused_groups(narrow + wide + convs, *fusion_policy({"fuse": "auto", "device": "cuda"}))) == 3


@pytest.mark.parametrize("name", list_models())
def test_fusible_models_are_exactly_those_the_fused_net_accepts(name):
    shape = (3, 32, 32)
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(create_model(name, input_shape=shape, num_classes=10, bn="hidden"))
    try:
        fused = FusedNet(models)
    except ValueError:
        assert name not in FUSIBLE_MODELS
        return
    assert name in FUSIBLE_MODELS
    fused.eval()
    x = torch.randn(4, *shape)
    out = fused(x)
    for k, model in enumerate(models):
        model.eval()
        torch.testing.assert_close(out[k], model(x), rtol=1e-4, atol=1e-5)


def test_a_run_is_read_back_from_its_folder_name(make_spec):
    spec = make_spec(seed=3, lr=3e-3, widths=[50, 30, 20], lr_schedule="triangular", lr_min=1e-5, lr_period=1)
    assert type(spec).from_relative_dir(spec.relative_dir()) == spec
    assert type(spec).from_relative_dir("results/runs/" + spec.relative_dir()) == spec
    with pytest.raises(ValueError, match="not a run folder"):
        type(spec).from_relative_dir(spec.relative_dir().replace("_bn~", "_xx~"))
