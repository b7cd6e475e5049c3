"""Internal covariate shift (Santurkar et al. 2018, Def. 2.1) and the co-adaptation proxy: the measurements,
that they leave training unchanged, the run files, resume, and the two analyses built on them."""

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnlab import runfolder
from bnlab.analyses import run_analysis
from bnlab.analyses import coadaptation as coad_analysis
from bnlab.analyses import ics as ics_analysis
from bnlab.analyses.evidence import matches
from bnlab.config import build_plan
from bnlab.models import create_model
from bnlab.models.bnlab_bn import _BnlabBatchNorm
from bnlab.train import execute_run
from bnlab.train.checkpoint import CHECKPOINT, CheckpointPolicy
from bnlab.train.coadapt import coadaptation, correlation_stats
from bnlab.train.ics import ics_layers, ics_step, rng_state, snapshot, weight_layers
from bnlab.train.loop import train_loop
from bnlab.train.tensors import Splits

BN_MODULES = (nn.modules.batchnorm._BatchNorm, _BnlabBatchNorm)


def quiet(_line):
    pass


def tiny_model(bn="none", bn_impl="torch", dropout=0.0, model="mlp", seed=0):
    torch.manual_seed(seed)
    widths = [12, 10, 8] if model == "mlp" else [4, 6, 6, 12, 8]
    shape = (1, 6, 6) if model == "mlp" else (1, 8, 8)
    return create_model(model, input_shape=shape, num_classes=5, bn=bn, bn_impl=bn_impl, widths=widths,
                        dropout_hidden=dropout, dropout_in=dropout / 2)


def batch(model="mlp", n=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    shape = (n, 1, 6, 6) if model == "mlp" else (n, 1, 8, 8)
    return torch.randn(*shape, generator=g), torch.randint(0, 5, (n,), generator=g)


def one_step(model, x, y, lr=0.05):
    """One training step as the loop takes it, with what ICS needs saved; returns (before, old, grads, rng)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    before = copy.deepcopy(model)  # W^t (buffers as before the step's forward; train-mode BN does not read them)
    rng = rng_state(x.device)
    F.cross_entropy(model(x), y).backward()
    old, grads = snapshot(model)
    opt.step()
    return before, old, grads, rng


def direct_g_prime(before, after, x, y, i, rng):
    """G' of weight layer i (1-based) by hand: a copy at W^t whose modules before layer i take W^{t+1}.

    Module by module, independently of the parameter order ics.py uses: a Linear/Conv2d with index j < i,
    and a BN that comes after weight layer j < i (or before every weight layer) are 'before layer i'.
    """
    model = copy.deepcopy(before)
    new = dict(after.named_modules())
    seen = 0
    target = None
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            seen += 1
            if seen == i:
                target = module
            if seen < i:
                module.load_state_dict(new[name].state_dict())
        elif isinstance(module, BN_MODULES) and seen < i:
            with torch.no_grad():
                module.weight.copy_(new[name].weight)
                module.bias.copy_(new[name].bias)
    model.train()
    torch.set_rng_state(rng[0])
    F.cross_entropy(model(x), y).backward()
    return target.weight.grad.detach().clone()


# ---------------------------------------------------------------- the measurement
@pytest.mark.parametrize("bn, bn_impl, dropout, model", [
    ("none", "torch", 0.0, "mlp"),
    ("hidden", "torch", 0.0, "mlp"),
    ("input+hidden", "bnlab", 0.3, "mlp"),
    ("hidden", "torch", 0.3, "cnn"),
], ids=["mlp", "mlp-bn", "mlp-inputbn-bnlab-dropout", "cnn-bn-dropout"])
def test_ics_matches_a_direct_calculation(bn, bn_impl, dropout, model):
    net = tiny_model(bn, bn_impl, dropout, model)
    x, y = batch(model)
    before, old, grads, rng = one_step(net, x, y)
    rows = ics_step(net, x, y, old, grads, rng)
    weights = weight_layers(net)
    first = 1 if bn == "input+hidden" else 2  # layer 1 has something before it only with an input BN
    assert [r["layer_index"] for r in rows] == list(range(first, len(weights) + 1))
    assert [r["layer"] for r in rows] == [name for name, _ in weights][first - 1:]
    for r in rows:
        i = r["layer_index"]
        g = grads[f"{weights[i - 1][0]}.weight"].double()
        g_prime = direct_g_prime(before, net, x, y, i, rng).double()
        assert r["grad_norm"] == pytest.approx(float(g.norm()), rel=1e-6)
        assert r["l2"] == pytest.approx(float((g - g_prime).norm()), rel=1e-5, abs=1e-8)
        cos = float((g * g_prime).sum() / (g.norm() * g_prime.norm()))
        assert r["cosine"] == pytest.approx(cos, abs=1e-6)
        assert r["l2"] > 0  # the earlier layers did move


def test_ics_is_zero_when_nothing_moved():
    """lr 0: W^{t+1} = W^t, so G' = G, with BN on batch statistics and the step's own dropout masks."""
    net = tiny_model("hidden", "torch", 0.4, "mlp")
    x, y = batch()
    _, old, grads, rng = one_step(net, x, y, lr=0.0)
    rows = ics_step(net, x, y, old, grads, rng)
    assert rows
    for r in rows:
        assert r["l2"] <= 1e-6 * max(1.0, r["grad_norm"])
        assert r["cosine"] == pytest.approx(1.0, abs=1e-6)


def test_ics_leaves_model_grads_buffers_and_rng_as_they_were():
    net = tiny_model("hidden", "bnlab", 0.3, "cnn")
    x, y = batch("cnn")
    _, old, grads, rng = one_step(net, x, y)
    state = copy.deepcopy(net.state_dict())
    grads_after = [None if p.grad is None else p.grad.clone() for p in net.parameters()]
    torch.manual_seed(123)
    rng_after = torch.get_rng_state()
    ics_step(net, x, y, old, grads, rng)
    assert torch.equal(torch.get_rng_state(), rng_after)
    for k, v in net.state_dict().items():  # parameters and BN running stats / num_batches_tracked
        assert torch.equal(v, state[k]), k
    for p, g in zip(net.parameters(), grads_after):
        assert (p.grad is None and g is None) or torch.equal(p.grad, g)
    assert net.training and all(m.training for m in net.modules())


def test_layers_without_anything_before_them_are_skipped():
    assert [lay.index for lay in ics_layers(tiny_model("none"))] == [2, 3, 4]
    assert [lay.index for lay in ics_layers(tiny_model("input+hidden"))] == [1, 2, 3, 4]


def _splits(n=192, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 5, (n,), generator=g)
    return Splits(train_x=x, train_y=y, val_x=x[:48], val_y=y[:48], test_x=x[:48], test_y=y[:48])


@pytest.mark.parametrize("bn_impl", ["torch", "bnlab"])
def test_training_is_identical_with_and_without_ics(bn_impl):
    """Losses, accuracies, grad norms and the final weights and BN statistics, bit for bit (dropout and BN)."""
    data = _splits()
    out = []
    for every in (0, 2):
        net = tiny_model("hidden", bn_impl, 0.3, "cnn")
        opt = torch.optim.Adam(net.parameters(), lr=0.01)
        torch.manual_seed(7)  # dropout draws from the global RNG, as in a run
        r = train_loop(net, opt, data, epochs=2, batch_size=32, evals_per_epoch=2, order_seed=0, log=quiet,
                       ics_every=every)
        out.append((r, net.state_dict()))
    (plain, w_plain), (measured, w_measured) = out
    assert not plain.ics_rows and measured.ics_rows
    assert {row["step"] for row in measured.ics_rows} == set(range(2, measured.steps_done + 1, 2))
    assert torch.equal(plain.step_loss, measured.step_loss)
    assert torch.equal(plain.step_grad_norm, measured.step_grad_norm)
    strip = lambda h: [{k: v for k, v in row.items() if not k.endswith("seconds")} for row in h]  # noqa: E731
    assert strip(plain.history) == strip(measured.history)
    for k in w_plain:
        assert torch.equal(w_plain[k], w_measured[k]), k


# ---------------------------------------------------------------- co-adaptation proxy
def test_correlation_stats_match_numpy_with_dead_and_nonfinite_units():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(50, 4))
    acts = np.column_stack([base[:, 0], base[:, 1] + 0.5 * base[:, 0], np.zeros(50), base[:, 2],
                            np.full(50, 3.0), base[:, 3] - base[:, 2], base[:, 0] * np.nan])
    stats = correlation_stats(acts)
    live = acts[:, [0, 1, 3, 5]]
    corr = np.corrcoef(live, rowvar=False)
    expected = np.abs(corr[~np.eye(4, dtype=bool)]).mean()
    assert stats["mean_abs_corr"] == pytest.approx(expected, rel=1e-12)
    assert (stats["units"], stats["dead_units"], stats["nonfinite_units"], stats["live_units"], stats["pairs"]) == \
        (7, 2, 1, 4, 6)
    assert math.isnan(correlation_stats(np.zeros((10, 3)))["mean_abs_corr"])
    perfectly = correlation_stats(np.column_stack([base[:, 0], -2 * base[:, 0] + 1]))
    assert perfectly["mean_abs_corr"] == pytest.approx(1.0)


def test_coadaptation_uses_each_activation_in_eval_mode_and_channel_means():
    net = tiny_model("hidden", "torch", 0.4, "cnn")
    net.train()
    x, _ = batch("cnn", n=40)
    result = coadaptation(net, x, batch=16)
    assert net.training  # modes restored
    names = [r["name"] for r in result["layers"]]
    assert names == ["features.conv1.act", "features.conv2.act", "features.conv3.act", "head.fc1.act",
                     "head.fc2.act"]
    assert [r["units"] for r in result["layers"]] == [4, 6, 6, 12, 8]
    assert [r["kind"] for r in result["layers"]] == ["conv"] * 3 + ["fc"] * 2
    net.eval()
    with torch.no_grad():
        conv1 = net.features.conv1(net.stem(x)).mean(dim=(2, 3)).double().numpy()
        fc1_in = net.head.fc1(net.head.flatten(net.features(net.stem(x)))).double().numpy()
    assert result["layers"][0]["mean_abs_corr"] == pytest.approx(correlation_stats(conv1)["mean_abs_corr"])
    assert result["layers"][3]["mean_abs_corr"] == pytest.approx(correlation_stats(fc1_in)["mean_abs_corr"])


# ---------------------------------------------------------------- through execute_run
def test_run_files(tmp_path, digits_path, make_spec):
    spec = make_spec(bn="hidden", dropout_hidden=0.3, epochs=1, ics_every=5, coadapt=True)
    assert "_ics~5_coad~true_" in spec.relative_dir()
    metrics = execute_run(spec, digits_path, tmp_path, log=quiet)
    run = runfolder.load_run(tmp_path)
    ics = run.ics()
    assert list(ics.columns) == ["step", "epoch", "layer_index", "layer", "l2", "cosine", "grad_norm"]
    assert set(ics.step) == set(range(5, metrics["steps"] + 1, 5)) and set(ics.layer_index) == {2, 3}
    assert metrics["ics_steps"] == len(set(ics.step)) and metrics["ics_seconds"] > 0
    coad = run.coadaptation()
    assert coad["computed"] and coad["images"] == 300 and [r["units"] for r in coad["layers"]] == [32, 32]
    plain = make_spec(bn="hidden", dropout_hidden=0.3, epochs=1)
    execute_run(plain, digits_path, tmp_path / "plain", log=quiet)
    other = runfolder.load_run(tmp_path / "plain")
    assert other.ics().empty and other.coadaptation() == {"computed": False, "reason": "coadapt: false",
                                                          "layers": []}
    pd.testing.assert_frame_equal(run.steps(), other.steps())


class CrashAfter(CheckpointPolicy):
    def __init__(self, path, every_steps, crash_after):
        super().__init__(path, every_steps=every_steps)
        self.crash_after, self.count = crash_after, 0

    def saved(self):
        super().saved()
        self.count += 1
        if self.count == self.crash_after:
            raise KeyboardInterrupt("simulated kill after a checkpoint")


def test_ics_rows_survive_a_resume(tmp_path, digits_path, make_spec, monkeypatch):
    spec = make_spec(bn="hidden", dropout_hidden=0.3, epochs=2, ics_every=3)
    execute_run(spec, digits_path, tmp_path / "straight", log=quiet)
    import bnlab.train.run as run_module

    real = run_module.CheckpointPolicy
    monkeypatch.setattr(run_module, "CheckpointPolicy",
                        lambda path, every_steps, every_seconds: CrashAfter(path, 10, 2))
    with pytest.raises(KeyboardInterrupt):
        execute_run(spec, digits_path, tmp_path / "killed", log=quiet, checkpoint_every_steps=10)
    assert (tmp_path / "killed" / CHECKPOINT).exists()
    monkeypatch.setattr(run_module, "CheckpointPolicy", real)
    metrics = execute_run(spec, digits_path, tmp_path / "killed", log=quiet, checkpoint_every_steps=10)
    assert metrics["resumed_from_step"] == 20
    a, b = runfolder.load_run(tmp_path / "straight").ics(), runfolder.load_run(tmp_path / "killed").ics()
    assert a.step.min() == 3 and len(a) > 0
    pd.testing.assert_frame_equal(a, b)


# ---------------------------------------------------------------- the analyses
def tiny_study(**fixed):
    cfg = {"data": {"val_size": 300},
           "defaults": {"dataset": "digits", "model": "mlp", "widths": [16, 16], "epochs": 1, "batch_size": 64},
           "studies": {"t": {"title": "Tiny", "question": "q", "fixed": fixed,
                             "grid": {"bn": ["none", "hidden"], "dropout_hidden": [0.0, 0.3]}, "seeds": [0]}}}
    return build_plan(cfg).studies["t"]


def test_analyses_build_from_a_tiny_study(tmp_path, digits_path):
    study = tiny_study(ics_every=4, coadapt=True)
    for run in study.runs:
        execute_run(run, digits_path, tmp_path / "runs" / run.relative_dir(), log=quiet)
    frag = run_analysis(study, "ics", results=tmp_path)
    assert [f["file"] for f in frag["figures"]] == ["ics.png"]
    assert "Santurkar et al. 2018" in frag["figures"][0]["caption"]
    assert (tmp_path / "studies" / "t" / "ics" / "ics.png").stat().st_size > 10_000
    rows = frag["tables"][0]["rows"]
    assert len(rows) == 4 * 2  # 4 cells x layers fc2, out
    assert not any(f.startswith("Ioffe & Szegedy") for f in frag["findings"])  # the explanation is background
    # two pairs (dropout 0 and 0.3), each a sentence with its direction
    verdicts = [f for f in frag["findings"] if "against" in f and "median ICS" in f]
    assert len(verdicts) == 2 and all("Santurkar et al.'s sense" in f for f in verdicts)
    assert frag["references"] == ["Ioffe & Szegedy 2015", "Santurkar et al. 2018"]
    stats = frag["stats"]["ics"]
    assert set(stats) == {study.label(r) for r in study.runs} and set(next(iter(stats.values()))) == {"fc2", "out"}
    assert len(frag["stats"]["bn_vs_no_bn"]) == 4
    out = tmp_path / "studies" / "t" / "ics"
    # the background: the two notions, and numbers that are the table's medians
    (part,) = frag["background"]
    assert (part["title"], part["source"]) == ("Internal covariate shift", "Seed 003, problem 1.1")
    assert "Ioffe & Szegedy 2015" in part["paragraphs"][0] and "Definition 2.1" in part["paragraphs"][1]
    pairs = pd.read_csv(out / "ics_pairs.csv")
    last = pairs[pairs.layer == "out"]
    assert len(last) == 2
    for r in last.itertuples():
        assert (f"{ics_analysis._g(r.bn_median_rel_l2)} with {r.bn_label} against "
                f"{ics_analysis._g(r.no_bn_median_rel_l2)} with {r.no_bn_label}") in part["paragraphs"][-1]
    # measures: per run, medians over its steps and layers of the rows the analysis wrote
    rows = pd.read_parquet(out / "ics_rows.parquet")
    measures = frag["stats"]["measures"]
    assert set(measures) == {"ics_relative", "ics_l2", "ics_cosine"}
    for name, column in (("ics_relative", "rel_l2"), ("ics_l2", "l2"), ("ics_cosine", "cosine")):
        assert len(measures[name]) == len(study.runs)
        for spec, entry in zip(study.runs, measures[name]):
            assert entry["params"] == {k: v for k, v in spec.as_strings().items() if k != "seed"}
            assert entry["seed"] == spec.seed and matches(spec.as_strings(), entry["params"])
            sel = rows[(rows.label == study.label(spec)) & (rows.seed == spec.seed)]
            assert entry["value"] == pytest.approx(float(sel[column].median()))

    frag = run_analysis(study, "coadaptation", results=tmp_path)
    assert [f["file"] for f in frag["figures"]] == ["coadaptation.png"]
    assert len(frag["tables"][0]["rows"]) == 4 * 2  # 4 cells x hidden layers fc1, fc2
    pairs = [f for f in frag["findings"] if "with dropout vs without" in f]
    assert len(pairs) == 2 and all("by this proxy" in f or "no consistent effect" in f for f in pairs)
    assert not any(f.startswith("Hinton et al.") for f in frag["findings"])  # the explanation is background
    assert frag["references"] == ["Hinton et al. 2012", "Srivastava et al. 2014"]
    assert set(frag["stats"]["coadaptation"][study.label(study.runs[0])]) == {"fc1", "fc2"}
    out = tmp_path / "studies" / "t" / "coadaptation"
    (part,) = frag["background"]
    assert (part["title"], part["source"]) == ("Co-adaptation", "Seed 003, problem 1.1")
    assert "Hinton et al. 2012" in part["paragraphs"][0] and "random subsets" in part["paragraphs"][0]
    assert "300 images" in part["paragraphs"][1]
    pairs = pd.read_csv(out / "coadapt_pairs.csv")
    for label, pair in pairs.groupby("dropout_label"):
        assert (f"{coad_analysis._g(pair.with_dropout.mean())} with {label} vs "
                f"{coad_analysis._g(pair.without_dropout.mean())} with {pair.no_dropout_label.iloc[0]} "
                "(2 layers, 1 seed)") in part["paragraphs"][-1]
    rows = pd.read_csv(out / "coadapt_rows.csv")
    (entries,) = frag["stats"]["measures"].values()
    assert list(frag["stats"]["measures"]) == ["mean_abs_corr"] and len(entries) == len(study.runs)
    layers = pd.read_csv(out / "coadapt_layers.csv")
    for spec, entry in zip(study.runs, entries):
        assert entry["params"] == {k: v for k, v in spec.as_strings().items() if k != "seed"}
        assert entry["seed"] == spec.seed
        sel = rows[(rows.label == study.label(spec)) & (rows.seed == spec.seed)]
        assert entry["value"] == pytest.approx(float(sel.mean_abs_corr.mean()))
        # one seed: the run's value is the mean over layers of the table's per-layer numbers
        assert entry["value"] == pytest.approx(float(layers[layers.label == study.label(spec)]["mean"].mean()))


def test_analyses_of_runs_that_measured_nothing_say_so(tmp_path, digits_path):
    study = tiny_study()
    study.runs = study.runs[:2]  # two cells are enough
    for run in study.runs:
        execute_run(run, digits_path, tmp_path / "runs" / run.relative_dir(), log=quiet)
    frag = run_analysis(study, "ics", results=tmp_path)
    assert not frag["figures"] and not frag["tables"]
    assert any("No run of this study recorded internal covariate shift (ics_every is 0" in f for f in frag["findings"])
    assert "did not measure it" in frag["background"][0]["paragraphs"][-1]
    assert frag["stats"]["measures"] == {"ics_relative": [], "ics_l2": [], "ics_cosine": []}
    frag = run_analysis(study, "coadaptation", results=tmp_path)
    assert not frag["figures"]
    assert any("coadapt is false in every run" in f for f in frag["findings"])
    assert "did not compute the proxy" in frag["background"][0]["paragraphs"][-1]
    assert frag["stats"]["measures"] == {"mean_abs_corr": []}


def _ics_rows(bn_l2, none_l2):
    rows = []
    for bn, values in (("hidden", bn_l2), ("none", none_l2)):
        for i, v in enumerate(values, start=2):
            for step in (10, 20, 30):
                rows.append({"label": f"bn={bn}", "seed": 0, "bn": bn, "setting": "all runs", "status": "ok",
                             "step": step, "epoch": step / 30, "layer_index": i, "layer": f"fc{i}",
                             "l2": v * step / 20, "cosine": 0.9 if bn == "hidden" else 0.99, "grad_norm": 1.0,
                             "rel_l2": v * step / 20})
    return pd.DataFrame(rows)


def test_the_ics_verdict_follows_the_data():
    info = {"runs": 2, "measured_runs": 2, "ics_every": [10]}

    def sentences(bn_l2, none_l2):
        layers = ics_analysis.summarise_layers(_ics_rows(bn_l2, none_l2))
        return " ".join(ics_analysis.ics_findings(layers, ics_analysis.bn_pairs(layers), info))

    higher = sentences([0.4, 0.2, 0.1], [0.2, 0.1, 0.05])
    assert "fc2 0.4 vs 0.2" in higher
    assert "BN's was higher in 3 of 3 layers and lower in none: BN did not reduce ICS" in higher
    lower = sentences([0.2, 0.1, 0.05], [0.4, 0.2, 0.1])
    assert "BN's was lower in all 3 layers: here BN did reduce ICS" in lower
    mixed = sentences([0.2, 0.3, 0.05], [0.4, 0.2, 0.1])
    assert "lower in 2 and higher in 1 of 3 layers: no consistent reduction" in mixed
    tie = sentences([0.2, 0.3], [0.4, 0.2])
    assert "lower in 1 and higher in 1 of 2 layers: no consistent reduction of ICS in Santurkar et al.'s sense." in tie
    assert "cos(G, G') was closer to 1 with BN in 0 and further from 1 in 3 of 3 layers" in higher


def test_run_medians_use_the_layers_every_cell_of_the_setting_measured():
    """An input BN gives its cell a layer 1 the no-BN cell has not: each run's median leaves it out."""
    rows = _ics_rows([0.4, 0.2], [0.1, 0.05])
    extra = rows[(rows.bn == "hidden") & (rows.layer == "fc2")].assign(layer_index=1, layer="fc1", l2=9.0,
                                                                       rel_l2=9.0, cosine=0.0)
    rows = pd.concat([extra, rows], ignore_index=True)
    assert ics_analysis.common_layers(rows) == {"all runs": ["fc2", "fc3"]}
    runs = ics_analysis.summarise_runs(rows).set_index("label")
    assert runs.loc["bn=hidden", "layers"] == "fc2 fc3" and runs.loc["bn=hidden", "rows"] == 6
    # steps 10, 20, 30 scale l2 by 0.5, 1, 1.5: the median over both layers' six values
    assert runs.loc["bn=hidden", "median_l2"] == pytest.approx(np.median([0.2, 0.4, 0.6, 0.1, 0.2, 0.3]))
    assert runs.loc["bn=none", "median_rel_l2"] == pytest.approx(np.median([0.05, 0.1, 0.15, 0.025, 0.05, 0.075]))
    assert runs.loc["bn=hidden", "median_cosine"] == pytest.approx(0.9)


def test_the_coadaptation_verdict_follows_the_data():
    def sentences(with_dropout, without):
        rows = []
        for dropout, values in (("dropout_hidden=0.5", with_dropout), ("no dropout", without)):
            for i, v in enumerate(values, start=1):
                rows.append({"label": dropout, "seed": 0, "status": "ok", "setting": "all runs", "dropout": dropout,
                             "layer_index": i, "layer": f"fc{i}", "kind": "fc", "units": 10, "dead_units": 0,
                             "nonfinite_units": 0, "live_units": 10, "mean_abs_corr": v})
        layers = coad_analysis.summarise_layers(pd.DataFrame(rows))
        pairs = coad_analysis.dropout_pairs(layers)
        return " ".join(coad_analysis.coadaptation_findings(layers, pairs, {"runs": 2, "computed_runs": 2}))

    lower = sentences([0.1, 0.2], [0.2, 0.4])
    assert "fc1 0.1 vs 0.2; fc2 0.2 vs 0.4" in lower
    assert "Dropout lowered it in all 2 layers: by this proxy, dropout reduced co-adaptation" in lower
    assert "mean change over layers -0.150, -50% relative" in lower
    higher = sentences([0.3, 0.5], [0.2, 0.4])
    assert "Dropout raised it in 2 of 2 layers and lowered it in none: by this proxy, dropout did not reduce" in higher


@pytest.mark.parametrize("analysis, fixed, message", [
    ("ics", {}, "set ics_every"), ("coadaptation", {}, "set coadapt: true"),
    ("ics", {"ics_every": 5}, None), ("coadaptation", {"coadapt": True}, None),
])
def test_a_study_asking_for_a_measurement_its_runs_do_not_take_is_a_config_error(analysis, fixed, message):
    from bnlab.analyses.runner import resolve_plan
    from bnlab.config import ConfigError, build_plan

    cfg = {"data": {"val_size": 300},
           "defaults": {"dataset": "digits", "model": "mlp", "widths": [16], "epochs": 1, "batch_size": 64},
           "studies": {"s": {"title": "t", "question": "q", "fixed": fixed, "grid": {"bn": ["none", "hidden"]},
                             "analyses": [analysis]}}}
    if message is None:
        assert analysis in resolve_plan(build_plan(cfg)).studies["s"].analyses
        return
    with pytest.raises(ConfigError, match=f"'studies.s.analyses': analysis '{analysis}' of study 's': .*{message}"):
        resolve_plan(build_plan(cfg))
