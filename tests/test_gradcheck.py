"""bnlab.gradcheck: seed 001's gradient check passes with bnlab's BN, can fail, and writes its report section."""

from __future__ import annotations

import json

import pytest
import torch

from bnlab import gradcheck
from bnlab.gradcheck import (
    broken_bn_backward,
    build_section,
    check_network,
    compare_with_torch,
    gradcheck_model,
    numerical_gradients,
    parameter_labels,
)
from bnlab.models.bnlab_bn import BatchNormFunction, _per_channel, _reduce_dims


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


def test_build_section_writes_json(tmp_path):
    build_section(tmp_path / "gc", seed=0, ns=(2, 4), d=6, widths=(8, 8))
    data = json.loads((tmp_path / "gc" / "section.json").read_text())
    assert set(data) == {"tables", "figures", "findings"}
    grad, cmp = data["tables"]
    for table in data["tables"]:
        assert table["caption"] and table["header"]
        assert all(len(row) == len(table["header"]) for row in table["rows"])
        assert all(isinstance(cell, str) for row in table["rows"] for cell in row)
    assert [row[0] for row in grad["rows"]] == ["W1", "gamma1", "beta1", "W2", "gamma2", "beta2", "W3", "b3"]
    assert len(cmp["rows"]) == 7
    assert len(data["findings"]) == 4
    assert "below the seed's threshold" in data["findings"][0]
    assert "The check can fail" in data["findings"][1]
    assert gradcheck.SEED_THRESHOLD == 1e-5


SMALL = dict(ns=(2, 4), d=6, widths=(8, 8))


def recomputed_numbers(seed: int, ns, d, widths) -> dict[str, float]:
    """The measures computed again from the check's own functions, apart from build_section."""
    checks = [check_network("bnlab", widths, n=n, d=d, seed=seed) for n in ns]
    reference = check_network("torch", widths, n=max(ns), d=d, seed=seed)
    with broken_bn_backward():
        broken = check_network("bnlab", widths, n=max(ns), d=d, seed=seed)
    out = {"max_rel_error": max(float(c["max_rel_diff"].max()) for c in checks),
           "max_abs_error": max(float(c["max_abs_diff"].max()) for c in checks),
           "torch_max_abs_error": float(reference["max_abs_diff"].max()),
           "broken_max_abs_error": float(broken["max_abs_diff"].max())}
    for name in ("float64", "float32"):
        frames = [compare_with_torch(dims=dims, dtype=getattr(torch, name), seed=seed) for dims in (1, 2)]
        out[f"vs_torch_max_abs_diff_{name}"] = max(float(f["max_abs_diff"].max()) for f in frames)
        out[f"vs_torch_max_rel_diff_{name}"] = max(float((f["max_abs_diff"] / f["max_abs_value"]).max())
                                                   for f in frames)
    return out


def test_measures_are_the_sections_numbers(tmp_path, monkeypatch):
    """The gradcheck analysis publishes the numbers its tables and findings print (build_section's settings)."""
    import functools

    from bnlab.analyses import run_analysis
    from bnlab.config import build_plan
    from bnlab.gradcheck import fmt_e

    # the analysis runs build_section with its defaults: make them small, and the measures must follow
    monkeypatch.setattr(gradcheck, "build_section", functools.partial(build_section, **SMALL))
    study = build_plan({"studies": {"gc": {"kind": "gradcheck", "title": "t", "question": "q"}}}).studies["gc"]
    frag = run_analysis(study, "gradcheck", results=tmp_path)
    measures = frag["stats"]["measures"]
    assert all(len(entries) == 1 and entries[0]["params"] == {} and entries[0]["seed"] is None
               for entries in measures.values())
    got = {name: entries[0]["value"] for name, entries in measures.items()}
    assert got == pytest.approx(recomputed_numbers(0, **SMALL))

    grad, cmp = frag["tables"]
    cells = lambda table, word: [float(row["cells"][i]) for row in table["rows"]  # noqa: E731
                                 for i, h in enumerate(table["header"]) if word in h]
    assert fmt_e(got["max_rel_error"]) == fmt_e(max(cells(grad, "max rel diff")))
    assert fmt_e(got["max_abs_error"]) == fmt_e(max(cells(grad, "max abs diff")))
    assert fmt_e(got["vs_torch_max_abs_diff_float64"]) == fmt_e(max(cells(cmp, "float64")))
    assert fmt_e(got["vs_torch_max_abs_diff_float32"]) == fmt_e(max(cells(cmp, "float32")))
    largest, broken, torch_match = frag["findings"][:3]
    assert f"over all parameters and batch sizes: {fmt_e(got['max_abs_error'])} " in largest
    assert f"torch's own BatchNorm (n=4) gives {fmt_e(got['torch_max_abs_error'])}:" in largest
    assert f"the largest difference (n=4) is {fmt_e(got['broken_max_abs_error'])} " in broken
    assert (f"within {fmt_e(got['vs_torch_max_abs_diff_float64'])} in float64 "
            f"({fmt_e(got['vs_torch_max_rel_diff_float64'])} relative") in torch_match
    assert (f"and {fmt_e(got['vs_torch_max_abs_diff_float32'])} in float32 "
            f"({fmt_e(got['vs_torch_max_rel_diff_float32'])} relative)") in torch_match
    assert got["max_abs_error"] < gradcheck.SEED_THRESHOLD < got["broken_max_abs_error"]
