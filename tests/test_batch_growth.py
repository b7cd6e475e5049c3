"""Growing batches, gradient accumulation, the matching lr decay and range-test picks, through the trainer."""

import json

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from bnlab import runfolder
from bnlab.analyses.batch_growth import findings, policy_table, summary
from bnlab.config import ConfigError, build_plan
from bnlab.models import create_model
from bnlab.schedules import batch_size_schedule, growth_boundaries, lr_decay_factor
from bnlab.train import execute_run
from bnlab.train.batches import fixed_plan, plan_batches
from bnlab.train.loop import eval_steps, train_loop
from bnlab.train.memory import activation_bytes_per_sample, micro_batch_cap
from bnlab.train.tensors import Splits


def quiet(_):
    pass


# ---- the batch plan ------------------------------------------------------------------


def test_fixed_plan_is_the_drop_last_epoch():
    plan = fixed_plan(1137, 3, 64)
    assert plan.total == 3 * (1137 // 64) and plan.fixed
    assert plan.offsets[:3] == (0, 64, 128) and plan.offsets[17] == 0  # a new epoch restarts its permutation
    assert plan.eval_steps(2) == eval_steps(17, 3, 2)
    assert [plan.progress(s) for s in (0, 17, 34, 51)] == [0.0, 1.0, 2.0, 3.0]


def test_growing_plan_doubles_and_never_splits_a_batch_across_epochs():
    n = 1000
    plan = plan_batches(n, 4, lambda s: batch_size_schedule(s, 32, 256, every=5))
    assert plan.sizes[:12] == (32,) * 5 + (64,) * 5 + (128,) * 2
    for e in range(4):
        steps = range(plan.epoch_starts[e], plan.epoch_starts[e + 1])
        used = [(plan.offsets[s], plan.sizes[s]) for s in steps]
        assert used[0][0] == 0
        assert all(o + b <= n for o, b in used)  # the short tail is dropped
        assert all(used[i][0] + used[i][1] == used[i + 1][0] for i in range(len(used) - 1))
    assert set(plan.sizes[-4:]) == {256}
    assert plan.progress(plan.total) == 4.0
    # a batch above the training set is cut to it: one full-batch step per epoch
    assert plan_batches(100, 2, lambda s: 4096).sizes == (100, 100)


# ---- lr decay matched to the growth ---------------------------------------------------


def test_lr_decay_falls_where_the_growing_batch_doubles():
    # growth 32 -> 128 every 10 steps: changes after 320 and 320 + 640 samples
    assert growth_boundaries(32, 128, 10) == [(320, 64), (960, 128)]
    factors = [lr_decay_factor(s, 32, 128, every=10) for s in (0, 9, 10, 29, 30, 10**5)]
    assert factors == [1, 1, 0.5, 0.5, 0.25, 0.25]
    # at any sample count, lr / batch is the same in both runs
    plan = plan_batches(10**6, 1, lambda s: batch_size_schedule(s, 32, 128, every=10))
    seen = 0
    for step, size in enumerate(plan.sizes[:60]):
        assert lr_decay_factor(seen // 32, 32, 128, every=10) == pytest.approx(32 / size)
        seen += size


# ---- accumulation ----------------------------------------------------------------------


def _splits(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)
    return Splits(train_x=x, train_y=y, val_x=x[:32], val_y=y[:32], test_x=x[:32], test_y=y[:32])


def _model(bn):
    torch.manual_seed(0)
    return create_model("mlp", input_shape=(1, 8, 8), num_classes=10, bn=bn, widths=[16]).double()


def test_accumulated_step_equals_the_full_batch_step_without_bn():
    data = _splits()
    data = Splits(**{k: (v.double() if v is not None and v.is_floating_point() else v) for k, v in data.__dict__.items()})
    results = []
    for cap in (0, 16):  # one 64-sample pass, or 4 accumulated micro-batches of 16
        model = _model("none")
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        r = train_loop(model, opt, data, epochs=1, batch_size=64, evals_per_epoch=1, order_seed=0,
                       log=quiet, max_micro_batch=cap)
        results.append((r, [p.detach().clone() for p in model.parameters()]))
    (full, w_full), (accum, w_accum) = results
    assert accum.micro_batches == [4] * 4 and full.micro_batches == [1] * 4
    assert torch.allclose(full.step_loss.double(), accum.step_loss.double(), atol=1e-6)
    for a, b in zip(w_full, w_accum):
        assert torch.allclose(a, b, atol=1e-12)


def test_accumulation_with_bn_is_ghost_batch_norm():
    # With BN each micro-batch is normalised on its own statistics, so the step differs from the
    # full-batch one: the same gradient as averaging the micro-batches' own losses.
    data = _splits()
    data = Splits(**{k: (v.double() if v is not None and v.is_floating_point() else v) for k, v in data.__dict__.items()})
    model = _model("hidden")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    train_loop(model, opt, data, epochs=1, batch_size=64, evals_per_epoch=1, order_seed=0, log=quiet,
               max_micro_batch=32)
    ghost = _model("hidden")
    perm = torch.randperm(256, generator=torch.Generator().manual_seed(0))
    ref_opt = torch.optim.SGD(ghost.parameters(), lr=0.1)
    ghost.train()
    for step in range(4):
        idx = perm[step * 64:(step + 1) * 64]
        ref_opt.zero_grad()
        for half in (idx[:32], idx[32:]):
            (F.cross_entropy(ghost(data.train_x[half]), data.train_y[half]) / 2).backward()
        ref_opt.step()
    for a, b in zip(model.parameters(), ghost.parameters()):
        assert torch.allclose(a, b, atol=1e-10)


def test_memory_cap_gives_a_power_of_two_micro_batch():
    model = create_model("cnn", input_shape=(1, 28, 28), num_classes=10, bn="hidden", widths=[16, 32, 64, 128, 64])
    per_sample = activation_bytes_per_sample(model, (1, 28, 28))
    assert per_sample > 2 * 4 * 16 * 28 * 28  # at least the first conv's output, kept and its gradient
    cap = micro_batch_cap(model, (1, 28, 28), 64)
    assert cap & (cap - 1) == 0 and cap * per_sample <= 64 * 2**20 < 2 * cap * per_sample
    with pytest.raises(ValueError, match="fewer than 2 samples"):
        micro_batch_cap(model, (1, 28, 28), 0.001)


# ---- through execute_run ---------------------------------------------------------------


def test_growing_run_writes_its_batches(tmp_path, digits_path, make_spec):
    spec = make_spec(batch_size=16, batch_growth_every=5, batch_growth_max=128, batch_mem_mb=0.1,
                     widths=[32], epochs=3, evals_per_epoch=2)
    metrics = execute_run(spec, digits_path, tmp_path, log=quiet)
    steps = pd.read_parquet(tmp_path / runfolder.STEPS)
    assert list(steps.batch_size[:11]) == [16] * 5 + [32] * 5 + [64]
    assert steps.batch_size.max() == 128 == metrics["final_batch_size"]
    assert steps.samples.iloc[-1] == metrics["samples"] == steps.batch_size.sum()
    cap = metrics["micro_batch_cap"]
    assert cap and steps.micro_batches.max() == 128 // cap > 1  # 0.1 MB holds fewer than 128 samples
    assert (steps.micro_batches == (steps.batch_size // cap).clip(lower=1)).all()
    assert metrics["epochs"] == pytest.approx(3.0) and steps.lr.nunique() == 1
    h = pd.read_parquet(tmp_path / runfolder.HISTORY)
    assert h[h.split == "train"].acc.between(0, 1).all()


def test_matched_decay_run_keeps_its_batch_and_halves_lr(tmp_path, digits_path, make_spec):
    spec = make_spec(batch_size=16, batch_growth_every=5, batch_growth_max=64, batch_growth_via="lr",
                     widths=[32], epochs=1, lr=0.01)
    execute_run(spec, digits_path, tmp_path, log=quiet)
    steps = pd.read_parquet(tmp_path / runfolder.STEPS)
    assert steps.batch_size.nunique() == 1
    # 5 steps at 0.01, then 0.005 until 16 + 32 = 48 batches of 16 ... (samples 80 + 160 = 240 = 15 steps)
    assert list(steps.lr[:16]) == [0.01] * 5 + [0.005] * 10 + [0.0025]
    assert steps.lr.iloc[-1] == 0.0025


def test_growth_config_errors():
    base = {"title": "t", "question": "q", "source": "s"}

    def plan(fixed):
        return build_plan({"studies": {"s": {**base, "fixed": fixed, "grid": {"bn": ["none"]}}}})

    with pytest.raises(ConfigError, match="constant lr"):
        plan({"batch_growth_every": 10, "lr_schedule": "triangular", "lr_min": 1e-4})
    with pytest.raises(ConfigError, match="batch_growth_max': must be above batch_size"):
        plan({"batch_growth_every": 10, "batch_size": 256, "batch_growth_max": 128})
    with pytest.raises(ConfigError, match="probes are not taken"):
        plan({"batch_growth_every": 10, "probe_every": 5})
    # growth settings of a fixed-batch run are "na": the same run as leaving them out
    a = plan({"batch_growth_max": 512}).studies["s"].runs[0]
    b = plan({}).studies["s"].runs[0]
    assert a == b and a.batch_growth_max == "na" and a.batch_mem_mb == "na"


# ---- rates picked by a range test ----------------------------------------------------


def _config(**clr_fixed):
    return {"studies": {
        "rt": {"title": "t", "question": "q", "source": "s", "grid": {"lr": [1e-3, 1e-2, 1e-1]},
               "analyses": ["lr_range"]},
        "clr": {"title": "t", "question": "q", "source": "s",
                "fixed": {"lr_schedule": "triangular", "lr_min": "pick-rt", "lr": "pick-rt", **clr_fixed},
                "grid": {"bn": ["none"]}},
    }}


def test_pick_references_are_checked():
    run = build_plan(_config()).studies["clr"].runs[0]
    assert run.picks == {"lr": "rt", "lr_min": "rt"} and "lr~pick-rt" in run.relative_dir()
    bad = _config()
    bad["studies"]["clr"]["fixed"]["lr"] = "pick-nowhere"
    with pytest.raises(ConfigError, match="no study 'nowhere'"):
        build_plan(bad)
    bad = _config()
    bad["studies"]["rt"]["analyses"] = []
    with pytest.raises(ConfigError, match="no lr_range analysis"):
        build_plan(bad)


def test_picked_rates_are_trained_with_and_recorded(tmp_path, digits_path, make_spec):
    table = tmp_path / "lr_range.csv"
    pd.DataFrame([{"curve": "grid", "lr_min": 1e-4, "lr_max": 5e-3, "lr_at_min": 1e-2, "lr_blowup": None,
                   "rule": "r", "error": ""},
                  {"curve": "sweep", "lr_min": 2e-4, "lr_max": 3e-3, "lr_at_min": 9e-3, "lr_blowup": None,
                   "rule": "r", "error": ""}]).to_csv(table, index=False)
    spec = make_spec(lr_schedule="triangular", lr="pick-rt", lr_min="pick-rt", lr_period=0.5, epochs=1)
    out = tmp_path / "run"
    metrics = execute_run(spec, digits_path, out, log=quiet, pick_tables={"rt": table})
    steps = pd.read_parquet(out / runfolder.STEPS)
    assert steps.lr.min() == pytest.approx(2e-4, rel=0.05) and steps.lr.max() == pytest.approx(3e-3, rel=0.02)
    assert metrics["lr_used"] == 3e-3 and metrics["lr_min_used"] == 2e-4
    assert metrics["picked"]["lr"] == {"value": 3e-3, "study": "rt", "curve": "sweep"}
    assert json.loads((out / runfolder.CONFIG).read_text())["params"]["lr"] == "pick-rt"
    # a range test that picked nothing stops the run with a message, not a made-up rate
    pd.DataFrame([{"curve": "grid", "lr_min": None, "lr_max": None, "lr_at_min": None, "lr_blowup": None,
                   "rule": "", "error": "the loss never falls"}]).to_csv(table, index=False)
    with pytest.raises(ValueError, match="picked no lr_min/lr_max.*never falls"):
        execute_run(spec, digits_path, tmp_path / "run2", log=quiet, pick_tables={"rt": table})


# ---- the analysis ----------------------------------------------------------------------


def test_policy_table_and_generalisation_answer(tmp_path, digits_path):
    cfg = {"data": {"val_size": 300},  # as digits_path: digits has 1437 training images
           "defaults": {"dataset": "digits", "widths": [32], "epochs": 2, "lr": 0.01, "batch_size": 16},
           "studies": {"bg": {"title": "t", "question": "q", "source": "s",
                              "grid": [{"batch_growth_every": [4], "batch_growth_max": [128],
                                        "batch_growth_via": ["batch", "lr"]},
                                       {"lr_schedule": ["exp_range"], "lr_min": [1e-3], "batch_size": [32]}],
                              "analyses": ["batch_growth"]}}}
    study = build_plan(cfg).studies["bg"]
    for run in study.runs:
        execute_run(run, digits_path, tmp_path / run.relative_dir(), log=quiet)
    table = policy_table(study, tmp_path)
    assert list(table.kind) == ["growth", "decay", "other"]
    growth, decay, clr = table.itertuples()
    assert growth.batch_last == 128 and decay.batch_last == 16 and clr.batch_last == 32
    assert growth.samples == pytest.approx(decay.samples, rel=0.15)  # equal data, up to dropped tails
    assert growth.updates < decay.updates / 3
    assert decay.lr_last == pytest.approx(0.01 * 16 / 128)
    summ = summary(table)
    text = " ".join(findings(summ, 1))
    assert f"{growth.updates:,.0f} updates against {decay.updates:,.0f}" in text
    assert "Generalisation: the growing-batch model is" in text
    assert ("similar to" in text) or ("better than" in text) or ("worse than" in text)
    diff = 100 * (growth.final_test_acc - decay.final_test_acc)
    assert f"{diff:+.2f} points" in text


def test_policies_in_words():
    from bnlab.analyses.batch_growth import lr_text

    assert lr_text(0.02, 0.02, 0.02, 0.02) == "0.02"
    assert lr_text(0.02, 0.0003, 0.0003, 0.02) == "0.02 → 0.0003"
    assert lr_text(0.0004, 0.0005, 0.0004, 0.02) == "0.0004 … 0.02, cycling"
    cfg = {"studies": {"bg": {"title": "t", "question": "q", "source": "s", "analyses": ["batch_growth"],
                              "grid": [{"batch_size": [32], "batch_growth_every": [25], "batch_growth_max": [2048],
                                        "batch_growth_via": ["batch", "lr"]},
                                       {"batch_size": [64], "lr_schedule": ["exp_range"], "lr_min": [1e-4],
                                        "lr_period": [1, 2]}]}}}
    study = build_plan(cfg).studies["bg"]
    labels = [study.label(r) for r in study.runs]
    assert labels == ["batch 32→2048 (x2 every 25 updates), fixed lr", "lr decay matched to that growth, batch 32",
                      "exp_range CLR, batch 64, lr_period=1, lr_gamma=0.99994",
                      "exp_range CLR, batch 64, lr_period=2, lr_gamma=0.99994"]
