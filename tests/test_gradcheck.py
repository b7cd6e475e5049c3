"""bnlab.analyses.gradient_check.checks and bnlab.analyses.gradient_check.manual_mlp: seed 001's gradient checks pass (the whole MLP by hand on real
images, bnlab's BN layer), can fail, and write their report section."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from bnlab.analyses.gradient_check import checks as gradcheck, manual_mlp
from bnlab.analyses.gradient_check.checks import (
    SEED_DIFFS,
    broken_bn_backward,
    build_section,
    check_network,
    compare_with_torch,
    gradcheck_model,
    load_images,
    manual_check,
    numerical_gradients,
    parameter_labels,
)
from bnlab.models.bnlab_bn import BatchNormFunction, _per_channel, _reduce_dims


SEED_ROWS = ["W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2", "beta2", "W3", "b3"]


@pytest.fixture(scope="module")
def digits_file(tmp_path_factory):
    """scikit-learn's digits as bnlab prepares them (results/data/digits.pt): real 8x8 images, 64-d."""
    from bnlab.data import prepare_dataset

    path = tmp_path_factory.mktemp("data") / "digits.pt"
    prepare_dataset("digits", path, val_size=200, split_seed=0, log=lambda _: None)
    return path


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_seed_network_gradients_match_numerical():
    df = check_network(bn_impl="bnlab", widths=(50, 50), n=8, d=20, seed=0)
    assert list(df["parameter"]) == ["W1", "gamma1", "beta1", "W2", "gamma2", "beta2", "W3", "b3"]
    assert list(df["shape"]) == ["50x20", "50", "50", "50x50", "50", "50", "10x50", "10"]
    assert (df["max_abs_diff"] < 1e-7).all(), df
    assert (df["max_abs_grad"] > 1e-3).all()  # the compared gradients are not trivially zero


def _backward_without_mean_term(ctx, grad_y, _gm, _gv):
    """A plausible bug: dx without the - dbeta (mean) term."""
    x_hat, inv_std, weight = ctx.saved_tensors
    dims = _reduce_dims(x_hat)
    m = x_hat.numel() // x_hat.shape[1]
    dgamma = (grad_y * x_hat).sum(dim=dims)
    dbeta = grad_y.sum(dim=dims)
    dx = _per_channel(weight * inv_std / m, x_hat) * (m * grad_y - x_hat * _per_channel(dgamma, x_hat))
    return dx, dgamma, dbeta, None


def test_broken_backward_is_detected(monkeypatch):
    kwargs = dict(widths=(16, 16), n=6, d=8, seed=0)
    monkeypatch.setattr(BatchNormFunction, "backward", staticmethod(_backward_without_mean_term))
    bad = check_network(**kwargs).set_index("parameter")
    monkeypatch.undo()
    # gradients below the first BN go wrong; those above it (gamma2, beta2, W3, b3) stay right
    assert bad.loc["W1", "max_abs_diff"] > 1e-3
    assert bad.loc["W2", "max_abs_diff"] > 1e-3
    assert bad.loc["W3", "max_abs_diff"] < 1e-7
    with broken_bn_backward():
        bad2 = check_network(**kwargs).set_index("parameter")
    assert bad2.loc["W1", "max_abs_diff"] > 1e-3
    good = check_network(**kwargs)  # the context manager restored the real backward
    assert (good["max_abs_diff"] < 1e-7).all()


def test_numerical_gradients_leave_model_unchanged_and_need_float64():
    model = gradcheck_model(widths=(4,), d=3, num_classes=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(5, 3, 1, 1, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1])
    grads = numerical_gradients(model, x, y)
    assert set(grads) == {n for n, _ in model.named_parameters()}
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    with pytest.raises(ValueError, match="float64"):
        numerical_gradients(model.float(), x.float(), y)


def test_parameter_labels_both_impls():
    for impl in ("bnlab", "torch"):
        labels = parameter_labels(gradcheck_model(impl, widths=(4, 4), d=3))
        assert sorted(f"{n}{k}" for k, n in labels.values()) == sorted(
            ["W1", "gamma1", "beta1", "W2", "gamma2", "beta2", "W3", "b3"])


@pytest.mark.parametrize("dims", [1, 2])
def test_compare_with_torch_float64(dims):
    df = compare_with_torch(dims=dims, n=6, channels=3, hw=(3, 3), steps=3)
    assert len(df) == 7
    assert (df["max_abs_diff"] < 1e-12).all(), df
    assert (df["max_abs_value"] > 1e-2).all()  # nothing compared is trivially zero


def test_build_section_writes_json(tmp_path, digits_file):
    build_section(tmp_path / "gc", digits_file, seed=0, ns=(2, 4), d=6, widths=(8, 8))
    data = json.loads((tmp_path / "gc" / "section.json").read_text())
    assert set(data) == {"tables", "figures", "findings"}
    manual, grad, cmp = data["tables"]
    for table in data["tables"]:
        assert table["caption"] and table["header"]
        assert all(len(row) == len(table["header"]) for row in table["rows"])
        assert all(isinstance(cell, str) for row in table["rows"] for cell in row)
    assert [row[0] for row in manual["rows"]] == SEED_ROWS
    assert [row[0] for row in grad["rows"]] == ["W1", "gamma1", "beta1", "W2", "gamma2", "beta2", "W3", "b3"]
    assert len(cmp["rows"]) == 7
    assert len(data["findings"]) == 7
    assert "every parameter is below the seed's threshold" in data["findings"][0]
    assert "The hand-written check can fail" in data["findings"][2]
    assert "below the seed's threshold" in data["findings"][3]
    assert "The check can fail" in data["findings"][4]
    assert gradcheck.SEED_THRESHOLD == 1e-5


SMALL = dict(ns=(2, 4), d=6, widths=(8, 8))


def recomputed_numbers(seed: int, ns, d, widths, data_file) -> dict[str, float]:
    """The measures computed again from the check's own functions, apart from build_section."""
    mc = manual_check(data_file, widths=widths, n=2, seed=seed)
    manual = {"manual_max_abs_error": float(mc.table["max_abs_diff"].max()),
              "manual_max_rel_error": float(mc.table["max_rel_diff"].max()),
              "manual_vs_autograd_max_abs_diff": mc.vs_autograd,
              "manual_loss_vs_model_abs_diff": mc.loss_vs_model,
              "manual_broken_max_abs_error": float(mc.broken["max_abs_diff"].max())}
    checks = [check_network("bnlab", widths, n=n, d=d, seed=seed) for n in ns]
    reference = check_network("torch", widths, n=max(ns), d=d, seed=seed)
    with broken_bn_backward():
        broken = check_network("bnlab", widths, n=max(ns), d=d, seed=seed)
    out = {"max_rel_error": max(float(c["max_rel_diff"].max()) for c in checks),
           "max_abs_error": max(float(c["max_abs_diff"].max()) for c in checks),
           "torch_max_abs_error": float(reference["max_abs_diff"].max()),
           "broken_max_abs_error": float(broken["max_abs_diff"].max()), **manual}
    for name in ("float64", "float32"):
        frames = [compare_with_torch(dims=dims, dtype=getattr(torch, name), seed=seed) for dims in (1, 2)]
        out[f"vs_torch_max_abs_diff_{name}"] = max(float(f["max_abs_diff"].max()) for f in frames)
        out[f"vs_torch_max_rel_diff_{name}"] = max(float((f["max_abs_diff"] / f["max_abs_value"]).max())
                                                   for f in frames)
    return out


def test_measures_are_the_sections_numbers(tmp_path, monkeypatch, digits_file):
    """The gradcheck analysis publishes the numbers its tables and findings print (build_section's settings)."""
    import functools

    from bnlab.analyses import run_analysis
    from bnlab.config import build_plan
    from bnlab.analyses.gradient_check.checks import fmt_e

    # the analysis runs build_section with its defaults: make them small, and the measures must follow
    monkeypatch.setattr(gradcheck, "build_section", functools.partial(build_section, **SMALL))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "digits.pt").write_bytes(digits_file.read_bytes())  # the option names this file
    config = {"studies": {"gc": {"kind": "gradcheck", "title": "t", "question": "q",
                                 "options": {"dataset": "digits"}}}}
    study = build_plan(config).studies["gc"]
    frag = run_analysis(study, "gradcheck", results=tmp_path, options=study.analysis_options["gradcheck"])
    measures = frag["stats"]["measures"]
    assert all(len(entries) == 1 and entries[0]["params"] == {} and entries[0]["seed"] is None
               for entries in measures.values())
    got = {name: entries[0]["value"] for name, entries in measures.items()}
    assert got == pytest.approx(recomputed_numbers(0, **SMALL, data_file=digits_file), rel=1e-6, abs=1e-15)

    manual, grad, cmp = frag["tables"]
    cells = lambda table, word: [float(row["cells"][i]) for row in table["rows"]  # noqa: E731
                                 for i, h in enumerate(table["header"]) if word in h]
    assert fmt_e(got["max_rel_error"]) == fmt_e(max(cells(grad, "max rel diff")))
    assert fmt_e(got["max_abs_error"]) == fmt_e(max(cells(grad, "max abs diff")))
    assert fmt_e(got["vs_torch_max_abs_diff_float64"]) == fmt_e(max(cells(cmp, "float64")))
    assert fmt_e(got["vs_torch_max_abs_diff_float32"]) == fmt_e(max(cells(cmp, "float32")))
    assert fmt_e(got["manual_max_abs_error"]) == fmt_e(max(cells(manual, "max abs diff (ours)")))
    assert fmt_e(got["manual_max_rel_error"]) == fmt_e(max(cells(manual, "max rel diff (ours)")))
    by_hand, vs_model, manual_broken = frag["findings"][:3]
    assert f"the largest difference is {fmt_e(got['manual_max_abs_error'])} " in by_hand
    assert f"training mode to {fmt_e(got['manual_loss_vs_model_abs_diff'])} " in vs_model
    assert f"torch's BatchNorm to {fmt_e(got['manual_vs_autograd_max_abs_diff'])} " in vs_model
    assert f"the largest difference is {fmt_e(got['manual_broken_max_abs_error'])} " in manual_broken
    assert got["manual_max_abs_error"] < gradcheck.SEED_THRESHOLD < got["manual_broken_max_abs_error"]
    largest, broken, torch_match = frag["findings"][3:6]
    assert f"over all parameters and batch sizes: {fmt_e(got['max_abs_error'])} " in largest
    assert f"torch's own BatchNorm (n=4) gives {fmt_e(got['torch_max_abs_error'])}:" in largest
    assert f"the largest difference (n=4) is {fmt_e(got['broken_max_abs_error'])} " in broken
    assert (f"within {fmt_e(got['vs_torch_max_abs_diff_float64'])} in float64 "
            f"({fmt_e(got['vs_torch_max_rel_diff_float64'])} relative") in torch_match
    assert (f"and {fmt_e(got['vs_torch_max_abs_diff_float32'])} in float32 "
            f"({fmt_e(got['vs_torch_max_rel_diff_float32'])} relative)") in torch_match
    assert got["max_abs_error"] < gradcheck.SEED_THRESHOLD < got["broken_max_abs_error"]


# ------------------------------------------------ the whole network by hand (bnlab.analyses.gradient_check.manual_mlp)


def _digits_batch(digits_file, n=8, seed=0):
    images = load_images(digits_file, n=n, seed=seed)
    return images.x, images.y


def _bnlab_mlp(bn_impl="torch", widths=(50, 50), seed=0):
    """bnlab's mlp, bn hidden, relu, on digits' (1, 8, 8) input, float64, gamma/beta away from 1/0."""
    return gradcheck_model(bn_impl, widths, seed=seed, input_shape=(1, 8, 8)).train()


def _autograd(model, x, y, l2=0.0):
    model.zero_grad(set_to_none=True)
    weights = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]
    loss = F.cross_entropy(model(x), y) + l2 * sum((w ** 2).sum() for w in weights)
    loss.backward()
    names = manual_mlp.model_names(model)
    return float(loss.detach()), {names[q]: p.grad.clone() for q, p in model.named_parameters()}


def test_load_images_standardised_as_training(digits_file):
    from bnlab.data import load_prepared
    from bnlab.train.tensors import _to_float

    images = load_images(digits_file, n=10, seed=3)
    data = load_prepared(digits_file)
    assert images.x.dtype == torch.float64 and images.x.shape == (10, 1, 8, 8)
    assert set(images.index) <= set(data.train_idx.tolist())  # training part of the split only
    assert len(set(images.y.tolist())) == 10  # class-stratified: one of each digit
    trained = _to_float(data.train_x[images.index], data.mean, data.std, "cpu")  # what training feeds the net
    assert torch.allclose(images.x.float(), trained, atol=1e-5)
    assert load_images(digits_file, n=10, seed=3).index == images.index  # fixed choice
    assert load_images(digits_file, n=10, seed=4).index != images.index


@pytest.mark.parametrize("bn_impl", ["torch", "bnlab"])
def test_manual_forward_equals_bnlab_model(digits_file, bn_impl):
    x, y = _digits_batch(digits_file)
    model = _bnlab_mlp(bn_impl)
    params, eps = manual_mlp.params_from_model(model)
    assert list(params) == ["W1", "gamma1", "beta1", "W2", "gamma2", "beta2", "W3", "b3"]
    assert eps == 1e-5
    for l2 in (0.0, 0.01):
        with torch.no_grad():
            weights = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]
            torch_loss = float(F.cross_entropy(model(x), y) + l2 * sum((w ** 2).sum() for w in weights))
        loss, _ = manual_mlp.forward(params, x, y, eps, l2)
        assert abs(loss - torch_loss) < 1e-12
        assert loss > 0.5  # a real cost, not a degenerate one
    # the zero DD2424 hidden biases leave the function as it is
    with_b, _ = manual_mlp.params_from_model(model, hidden_bias=True)
    assert manual_mlp.forward(with_b, x, y, eps)[0] == manual_mlp.forward(params, x, y, eps)[0]


@pytest.mark.parametrize("bn_impl", ["torch", "bnlab"])
@pytest.mark.parametrize("l2", [0.0, 0.05])
def test_manual_gradients_equal_autograd(digits_file, bn_impl, l2):
    x, y = _digits_batch(digits_file)
    model = _bnlab_mlp(bn_impl)
    params, eps = manual_mlp.params_from_model(model)
    grads = manual_mlp.backward(params, manual_mlp.forward(params, x, y, eps, l2)[1])
    _, auto = _autograd(model, x, y, l2)
    assert set(grads) == set(auto)
    for name, g in grads.items():
        assert g.shape == auto[name].shape
        assert (g - auto[name]).abs().max() < 1e-10, name
        assert auto[name].abs().max() > 1e-4, name  # nothing compared is trivially zero


def test_l2_term_gradient(digits_file):
    x, y = _digits_batch(digits_file, n=4)
    params, eps = manual_mlp.params_from_model(_bnlab_mlp(widths=(6, 5)), hidden_bias=True)
    l2 = 0.1
    plain = manual_mlp.backward(params, manual_mlp.forward(params, x, y, eps)[1])
    loss, cache = manual_mlp.forward(params, x, y, eps, l2)
    regular = manual_mlp.backward(params, cache)
    penalty = sum(float((params[w] ** 2).sum()) for w in ("W1", "W2", "W3"))
    assert loss == pytest.approx(manual_mlp.forward(params, x, y, eps)[0] + l2 * penalty, rel=1e-14)
    for name in params:
        expected = plain[name] + (2 * l2 * params[name] if name.startswith("W") else 0)
        assert torch.allclose(regular[name], expected, rtol=0, atol=1e-14), name
    numerical = manual_mlp.numerical_gradients(params, x, y, eps, l2)
    for name in params:
        assert (regular[name] - numerical[name]).abs().max() < 1e-7, name


def test_manual_gradients_match_centred_differences_on_digits(digits_file):
    mc = manual_check(digits_file, widths=(12, 8), n=4, seed=0)
    t = mc.table.set_index("parameter")
    assert list(mc.table["parameter"]) == SEED_ROWS
    assert list(t["shape"]) == ["12x64", "12", "12", "12", "8x12", "8", "8", "8", "10x8", "10"]
    assert (t["checked"] == t["numel"]).all()  # small enough to check every entry
    assert (t["max_abs_diff"] < 1e-7).all(), mc.table
    bnlab_params = [p for p in SEED_ROWS if p not in ("b1", "b2")]
    assert (t.loc[bnlab_params, "max_abs_grad"] > 1e-3).all()  # real gradients
    assert (t.loc[["b1", "b2"], "max_abs_grad"] < 1e-12).all()  # BN cancels a hidden bias
    assert mc.vs_autograd < 1e-10 and mc.vs_bnlab_bn < 1e-10 and mc.loss_vs_model < 1e-12
    assert mc.images.dataset == "digits" and mc.images.x.shape == (4, 1, 8, 8)


def test_large_tensors_are_sampled(digits_file):
    mc = manual_check(digits_file, widths=(12, 8), n=4, seed=1, full_limit=100, sample=30)
    t = mc.table.set_index("parameter")
    assert t.loc["W1", "checked"] == 30 and t.loc["W1", "numel"] == 768
    assert t.loc["b3", "checked"] == 10  # small tensors in full
    assert (t["max_abs_diff"] < 1e-7).all()


def test_broken_manual_backward_fails(digits_file):
    mc = manual_check(digits_file, widths=(12, 8), n=4, seed=0)
    bad = mc.broken.set_index("parameter")
    # the mean's path is left out of both BN backwards: every gradient below BN 2 goes wrong
    for name in ("W1", "b1", "gamma1", "beta1", "W2", "b2"):
        assert bad.loc[name, "max_abs_diff"] > 1e-3, name
    for name in ("gamma2", "beta2", "W3", "b3"):
        assert bad.loc[name, "max_abs_diff"] < 1e-7, name
    with pytest.raises(ValueError, match="unknown BN backward variant"):
        manual_mlp.bn_backward(torch.ones(2, 1), torch.ones(2, 1), torch.ones(1), 1e-5, "nope")


def test_manual_mlp_refuses_other_networks():
    from bnlab.models import create_model

    for kwargs in ({"bn": "none"}, {"bn": "hidden", "activation": "tanh"}, {"bn": "input+hidden"},
                   {"bn": "hidden", "dropout_hidden": 0.5}):
        model = create_model("mlp", input_shape=(1, 4, 4), num_classes=3, widths=[5], **kwargs)
        with pytest.raises(ValueError):
            manual_mlp.params_from_model(model)
    with pytest.raises(ValueError, match="float64"):
        params, eps = manual_mlp.params_from_model(gradcheck_model(widths=(4,), d=3, num_classes=3))
        manual_mlp.forward(params, torch.randn(3, 3), torch.tensor([0, 1, 2]), eps)


def test_seed_table_has_the_seeds_values_beside_ours(tmp_path, digits_file):
    build_section(tmp_path / "gc", digits_file, seed=0, ns=(2,), d=4, widths=(6, 5))
    table = json.loads((tmp_path / "gc" / "section.json").read_text())["tables"][0]
    head = table["header"]
    rows = {row[0]: dict(zip(head, row)) for row in table["rows"]}
    assert [row[0] for row in table["rows"]] == SEED_ROWS
    mc = manual_check(digits_file, widths=(6, 5), n=2, seed=0).table.set_index("parameter")
    for name in SEED_ROWS:
        assert float(rows[name]["seed's diff_max"]) == SEED_DIFFS[name]
        assert rows[name]["max abs diff (ours)"] == gradcheck.fmt_e(mc.loc[name, "max_abs_diff"])
        assert rows[name]["below 1e-05"] == ("yes" if mc.loc[name, "max_abs_diff"] < 1e-5 else "NO")
    assert SEED_DIFFS["gamma2"] == 3.3339e-11 and len(SEED_DIFFS) == 10
    assert "digits" in table["caption"] and "n=2" in table["caption"]


def test_dataset_option_is_an_extra_input(tmp_path):
    from bnlab.analyses import run_analysis
    from bnlab.analyses.registry import get_analysis
    from bnlab.config import build_plan

    entry = get_analysis("gradcheck")
    for options, expected in (({}, "fashion_mnist"), ({"dataset": "digits"}, "digits"),
                              ({"dataset": "mnist"}, "mnist")):
        config = {"studies": {"gc": {"kind": "gradcheck", "title": "t", "question": "q", "options": options}}}
        plan = build_plan(config)
        assert entry.extra_inputs(plan, plan.studies["gc"]) == [f"data/{expected}.pt"]
        assert entry.plan_params(plan, plan.studies["gc"]) == {"dataset": expected}
    plan = build_plan({"defaults": {"dataset": "digits"},
                       "studies": {"gc": {"kind": "gradcheck", "title": "t", "question": "q"}}})
    assert entry.extra_inputs(plan, plan.studies["gc"]) == ["data/digits.pt"]
    with pytest.raises(FileNotFoundError, match="digits.pt does not exist"):
        run_analysis(plan.studies["gc"], "gradcheck", results=tmp_path, extra={"dataset": "digits"})


def test_colour_images_are_standardised_per_channel(tmp_path):
    """CIFAR-like (3, H, W) images: per-channel standardisation and the flattened 3*H*W-d input."""
    from bnlab.data.prepared import PreparedData, channel_stats, save_prepared

    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (40, 3, 4, 4), dtype=torch.uint8, generator=gen)
    x[:, 1] //= 4  # channels with different statistics
    y = torch.arange(40) % 10
    train_idx, val_idx = torch.arange(30), torch.arange(30, 40)
    mean, std = channel_stats(x[train_idx])
    save_prepared(PreparedData(name="cifar10", train_x=x, train_y=y, test_x=x[:5], test_y=y[:5],
                               train_idx=train_idx, val_idx=val_idx, mean=mean, std=std,
                               classes=[str(i) for i in range(10)], source="test", checksum="-"),
                  tmp_path / "cifar10.pt")
    images = load_images(tmp_path / "cifar10.pt", n=10, seed=0)
    assert images.x.shape == (10, 3, 4, 4) and images.dataset == "cifar10"
    per_channel = images.x.transpose(0, 1).reshape(3, -1)
    raw = (x[images.index].double() / 255).transpose(0, 1).reshape(3, -1)
    assert torch.allclose(per_channel, (raw - mean.double()[:, None]) / std.double()[:, None])
    mc = manual_check(tmp_path / "cifar10.pt", widths=(5, 4), n=10, seed=0)
    assert mc.table.set_index("parameter").loc["W1", "shape"] == "5x48"
    assert (mc.table["max_abs_diff"] < 1e-7).all() and mc.vs_autograd < 1e-10
