"""The trainer and the run-folder contract it writes (bnlab.train, bnlab.runfolder)."""

import json
import math

import pandas as pd
import pytest
import torch

from bnlab import runfolder
from bnlab.train import execute_run
from bnlab.train.loop import eval_steps

TIMING_COLUMNS = ["train_seconds", "wall_seconds"]


def quiet(_line):
    pass


def test_eval_steps_cover_epoch_ends():
    assert eval_steps(10, 2, 1) == [10, 20]
    assert eval_steps(10, 1, 2) == [5, 10]
    assert eval_steps(3, 1, 5) == [1, 2, 3]  # no more evaluations than steps


def test_run_folder_contract(tmp_path, digits_path, make_spec):
    spec = make_spec(bn="input+hidden", evals_per_epoch=2)
    metrics = execute_run(spec, digits_path, tmp_path, log=quiet)
    for name in runfolder.OUTPUT_FILES:  # probes.parquet included (empty without probes)
        assert (tmp_path / name).exists(), name
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files
    run = runfolder.load_run(tmp_path)
    assert run.config["params"] == spec.as_strings()
    assert run.metrics["status"] == "ok" and metrics["status"] == "ok"
    steps_per_epoch = (1437 - 300) // 64
    assert run.metrics["steps"] == 2 * steps_per_epoch
    # history: step 0 + 4 evaluations for val, 4 for train, the whole val and test sets at the end
    h = run.history
    assert sorted(h[h.split == "val"].step) == [0] + eval_steps(steps_per_epoch, 2, 2) == [0, 8, 17, 26, 34]
    assert set(h.split) == {"train", "val", "val_full", "test_full"}
    assert list(h[h.split == "test_full"].step) == list(h[h.split == "val_full"].step) == [34]
    assert len(h[h.split == "train"]) == 4
    steps = run.steps()
    assert list(steps.step) == list(range(1, 2 * steps_per_epoch + 1))
    assert steps.grad_norm.gt(0).all() and steps.loss.notna().all()
    # gamma/beta per BN layer and channel: input BN over the 64 flattened pixels + 2 hidden (32 each),
    # at step 0 and at each epoch end
    bn = run.bn_params()
    assert set(bn.kind) == {"input", "hidden"}
    assert len(bn) == (64 + 32 + 32) * 3
    final = bn[bn.step == bn.step.max()]
    assert not (final.gamma == 1).all()  # gamma was trained
    assert run.metrics["best_val_acc"] >= run.metrics["final_val_acc"] - 1e-12


def test_learns_digits(tmp_path, digits_path, make_spec):
    metrics = execute_run(make_spec(epochs=4, lr=0.01), digits_path, tmp_path, log=quiet)
    assert metrics["final_val_acc"] > 0.8  # chance is 0.1


def test_same_config_gives_identical_results(tmp_path, digits_path, make_spec):
    spec = make_spec(bn="hidden", dropout_hidden=0.3)
    a = execute_run(spec, digits_path, tmp_path / "a", log=quiet)
    b = execute_run(spec, digits_path, tmp_path / "b", log=quiet)
    ha = runfolder.load_run(tmp_path / "a").history.drop(columns=TIMING_COLUMNS)
    hb = runfolder.load_run(tmp_path / "b").history.drop(columns=TIMING_COLUMNS)
    pd.testing.assert_frame_equal(ha, hb)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a" / "steps.parquet"),
                                  pd.read_parquet(tmp_path / "b" / "steps.parquet"))
    assert a["final_test_acc"] == b["final_test_acc"]
    # and a different seed really changes the run
    c = execute_run(make_spec(bn="hidden", dropout_hidden=0.3, seed=1), digits_path, tmp_path / "c", log=quiet)
    assert runfolder.load_run(tmp_path / "c").history.loss.tolist() != ha.loss.tolist()


def test_divergence_is_a_result(tmp_path, digits_path, make_spec):
    lines = []
    spec = make_spec(optimizer="sgd", lr=1e4, momentum=0.9, init="normal", init_scale=3.0)
    metrics = execute_run(spec, digits_path, tmp_path, log=lines.append)
    assert metrics["status"] == "diverged"
    step = metrics["diverged_step"]
    assert 1 <= step < 2 * ((1437 - 300) // 64)
    steps = runfolder.load_run(tmp_path).steps()
    assert len(steps) == step and not math.isfinite(steps.loss.iloc[-1])
    assert steps.loss.iloc[:-1].apply(math.isfinite).all()
    assert any("DIVERGED" in line for line in lines)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())  # valid JSON despite NaN losses
    assert on_disk["status"] == "diverged" and on_disk["diverged_step"] == step


def test_zero_init_tanh_stays_at_chance(tmp_path, digits_path, make_spec):
    """Seed 000's expectation: zero weights never break symmetry."""
    metrics = execute_run(make_spec(init="zeros", activation="tanh", epochs=2), digits_path, tmp_path, log=quiet)
    assert metrics["best_val_acc"] < 0.25


def test_threads_are_set(tmp_path, digits_path, make_spec):
    before = torch.get_num_threads()
    try:
        metrics = execute_run(make_spec(epochs=1), digits_path, tmp_path, threads=1, log=quiet)
        assert metrics["threads"] == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_cuda_request_without_gpu_is_a_clear_error(tmp_path, digits_path, make_spec):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        execute_run(make_spec(), digits_path, tmp_path, device="cuda", log=quiet)


def test_test_set_at_the_end_unless_asked_every_time(tmp_path, digits_path, make_spec):
    execute_run(make_spec(evals_per_epoch=2), digits_path, tmp_path / "final", log=quiet)
    h = runfolder.load_run(tmp_path / "final").history
    assert "test" not in set(h.split) and list(h[h.split == "test_full"].step) == [h.step.max()]
    execute_run(make_spec(evals_per_epoch=2, eval_test="every"), digits_path, tmp_path / "every", log=quiet)
    h = runfolder.load_run(tmp_path / "every").history
    assert list(h[h.split == "test"].step) == list(h[h.split == "val"].step)
    assert list(h[h.split == "test_full"].step) == [h.step.max()]


def test_bnlab_batch_norm_trains_like_torch(tmp_path, digits_path, make_spec):
    """Same init, same batches: bnlab's hand-written BN follows torch's to float32 noise."""
    torch_run = execute_run(make_spec(bn="hidden", epochs=3), digits_path, tmp_path / "t", log=quiet)
    bnlab_run = execute_run(make_spec(bn="hidden", bn_impl="bnlab", epochs=3), digits_path, tmp_path / "b", log=quiet)
    assert abs(torch_run["final_val_acc"] - bnlab_run["final_val_acc"]) <= 0.01
    lt = runfolder.load_run(tmp_path / "t").steps().loss
    lb = runfolder.load_run(tmp_path / "b").steps().loss
    assert (lt - lb).abs().max() < 1e-3


def test_probes_leave_training_unchanged(tmp_path, digits_path, make_spec):
    """Santurkar probes every 3rd step: same trajectory as without them, and a probe table."""
    plain = make_spec(bn="hidden", dropout_hidden=0.2, epochs=2)
    probed = make_spec(bn="hidden", dropout_hidden=0.2, epochs=2, probe_every=3, probe_etas=4)
    assert probed.probe_multipliers == [0.5, 1.0, 2.0, 4.0]
    execute_run(plain, digits_path, tmp_path / "plain", log=quiet)
    execute_run(probed, digits_path, tmp_path / "probed", log=quiet)
    a, b = runfolder.load_run(tmp_path / "plain"), runfolder.load_run(tmp_path / "probed")
    pd.testing.assert_frame_equal(a.steps(), b.steps())
    pd.testing.assert_frame_equal(a.history.drop(columns=TIMING_COLUMNS), b.history.drop(columns=TIMING_COLUMNS))
    probes = b.probes()
    steps = b.metrics["steps"]
    assert len(probes) == 4 * (steps // 3) and set(probes.step) == set(range(3, steps + 1, 3))
    assert (probes.beta > 0).all() and probes.loss.notna().all()
    assert a.probes().empty


def test_last_layer_gradient_change_is_recorded(tmp_path, digits_path, make_spec):
    execute_run(make_spec(epochs=1), digits_path, tmp_path, log=quiet)
    steps = runfolder.load_run(tmp_path).steps()
    assert math.isnan(steps.last_grad_change.iloc[0])  # no previous step
    assert (steps.last_grad_change.iloc[1:] > 0).all()


@pytest.mark.parametrize("schedule, extra", [
    ("triangular", {"lr_min": 1e-4, "lr_period": 0.5}),
    ("exp_range", {"lr_min": 1e-4, "lr_period": 0.5, "lr_gamma": 0.99}),
    ("range_test", {"lr_min": 1e-6}),
    ("step_decay", {"lr_period": 1, "lr_gamma": 10}),
])
def test_learning_rate_schedules_follow_their_formula(tmp_path, digits_path, make_spec, schedule, extra):
    from bnlab import schedules

    spec = make_spec(lr=1e-2, lr_schedule=schedule, epochs=2, **extra)
    execute_run(spec, digits_path, tmp_path, log=quiet)
    steps = runfolder.load_run(tmp_path).steps()
    per_epoch, total = len(steps) // 2, len(steps)
    period = round(float(extra.get("lr_period", 1)) * per_epoch)
    expected = {
        "triangular": lambda it: schedules.clr(it, 1e-4, 1e-2, period, "triangular"),
        "exp_range": lambda it: schedules.clr(it, 1e-4, 1e-2, period, "exp_range", 0.99),
        "range_test": lambda it: schedules.range_test_lr(it, total, 1e-6, 1e-2),
        "step_decay": lambda it: schedules.step_decay(it, 1e-2, 10, period),
    }[schedule]
    assert steps.lr.tolist() == pytest.approx([expected(it) for it in range(total)], rel=1e-12)
