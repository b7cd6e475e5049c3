"""Landscape probes: values against a by-hand computation, loop == vmap, and nothing the training sees changes."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from bnlab.analyses.loss_landscape import check_probe_method, last_layer_grad, probe_step, summarise_probe
from bnlab.models import create_model

ETAS = (0.5, 1.0, 2.0, 4.0)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: a second OpenMP thread only waits for a core the training pipeline holds (~100x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
LR = 0.05


def mlp(dtype=torch.float64, **kw):
    torch.manual_seed(0)
    return create_model("mlp", input_shape=(1, 4, 4), num_classes=3, widths=[8], bn="hidden",
                        dropout_hidden=0.2, **kw).to(dtype)


def cnn(dtype=torch.float64, dropout=0.0, **kw):
    torch.manual_seed(0)
    return create_model("cnn", input_shape=(1, 8, 8), num_classes=3, widths=[4, 4, 4, 8, 8], bn="hidden",
                        dropout_hidden=dropout, **kw).to(dtype)


MODELS = {"mlp_dropout_bn1d": mlp, "cnn_bn2d": cnn}


def batch(model, dtype=torch.float64, n=16):
    g = torch.Generator().manual_seed(1)
    shape = (1, 8, 8) if len(model.features) else (1, 4, 4)
    return torch.randn(n, *shape, generator=g, dtype=dtype), torch.randint(0, 3, (n,), generator=g)


def backward(model, xb, yb):
    """What the training loop does before it calls the probe."""
    model.train()
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(xb), yb).backward()


def snapshot(model):
    return ({n: p.detach().clone() for n, p in model.named_parameters()},
            {n: p.grad.clone() for n, p in model.named_parameters()},
            {n: b.clone() for n, b in model.named_buffers()},
            [m.training for m in model.modules()])


def assert_same_state(model, snap):
    params, grads, buffers, modes = snap
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), params[n]), n
        assert torch.equal(p.grad, grads[n]), n
    for n, b in model.named_buffers():
        assert torch.equal(b, buffers[n]), n
    assert [m.training for m in model.modules()] == modes


def direct(model, xb, yb, lr, etas, rng_state, recompute):
    """Same three numbers by hand: a copy with weights w - eta*lr*g, forward/backward in train mode."""
    g = [p.grad.clone() for p in model.parameters()]

    def grads_at(step):
        m = copy.deepcopy(model)
        m.train()
        with torch.no_grad():
            for p, gi in zip(m.parameters(), g):
                p.copy_(p - step * gi)
        m.zero_grad(set_to_none=True)
        torch.set_rng_state(rng_state)  # the probe's dropout masks
        loss = F.cross_entropy(m(xb), yb)
        loss.backward()
        return float(loss.detach()), [p.grad for p in m.parameters()]

    base = grads_at(0.0)[1] if recompute else g
    g_norm = math.sqrt(sum(float((gi.double() ** 2).sum()) for gi in g))
    rows = []
    for eta in etas:
        loss, ge = grads_at(eta * lr)
        change = math.sqrt(sum(float(((a - b).double() ** 2).sum()) for a, b in zip(ge, base)))
        rows.append({"eta": eta, "step_size": eta * lr, "loss": loss, "grad_change": change,
                     "beta": change / (eta * lr * g_norm)})
    return rows


def assert_rows_close(a, b, rtol):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            assert ra[k] == pytest.approx(rb[k], rel=rtol, abs=1e-12), (k, ra, rb)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("method", ["loop", "vmap"])
def test_probe_matches_direct_computation_and_restores_everything(name, method):
    model = MODELS[name]()
    xb, yb = batch(model)
    backward(model, xb, yb)
    snap = snapshot(model)
    rng = torch.get_rng_state()
    rows = probe_step(model, xb, yb, LR, ETAS, method=method)
    # Restored: parameters, grads, BN buffers (running stats, num_batches_tracked), modes, RNG.
    assert_same_state(model, snap)
    assert torch.equal(torch.get_rng_state(), rng)
    after = torch.rand(4)
    torch.set_rng_state(rng)
    assert torch.equal(after, torch.rand(4))

    expected = direct(model, xb, yb, LR, ETAS, rng, recompute=name.startswith("mlp_dropout"))
    assert_rows_close(rows, expected, 1e-9)
    assert [r["step_size"] for r in rows] == [e * LR for e in ETAS]
    assert all(r["grad_change"] > 0 for r in rows)


@pytest.mark.parametrize("name", MODELS)
def test_loop_equals_vmap(name):
    for dtype, rtol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        model = MODELS[name](dtype)
        xb, yb = batch(model, dtype)
        backward(model, xb, yb)
        loop = probe_step(model, xb, yb, LR, ETAS, method="loop")
        vm = probe_step(model, xb, yb, LR, ETAS, method="vmap")
        assert_rows_close(loop, vm, rtol)
        # base_grad="given" / "recompute" agree with each other without dropout
        if name == "cnn_bn2d":
            assert_rows_close(loop, probe_step(model, xb, yb, LR, ETAS, base_grad="recompute"), 1e-4)


@pytest.mark.parametrize("name", MODELS)
def test_probe_runs_in_train_mode_and_keeps_eval_mode(name):
    model = MODELS[name]()
    xb, yb = batch(model)
    backward(model, xb, yb)
    train_rows = probe_step(model, xb, yb, LR, ETAS)
    model.eval()
    model.head.train()  # mixed modes come back as they were
    modes = [m.training for m in model.modules()]
    assert probe_step(model, xb, yb, LR, ETAS) == train_rows
    assert [m.training for m in model.modules()] == modes


def test_bnlab_bn_loop_only():
    model = cnn(bn_impl="bnlab")
    with pytest.raises(ValueError, match="loop"):
        check_probe_method(model, "vmap")
    with pytest.raises(ValueError, match="unknown probe method"):
        check_probe_method(model, "fast")
    xb, yb = batch(model)
    backward(model, xb, yb)
    snap = snapshot(model)
    rows = probe_step(model, xb, yb, LR, ETAS, method="loop")
    assert_same_state(model, snap)
    assert_rows_close(rows, direct(model, xb, yb, LR, ETAS, torch.get_rng_state(), False), 1e-9)


def test_summarise_probe():
    rows = [{"eta": 0.5, "step_size": 0.05, "loss": 2.0, "grad_change": 0.1, "beta": 3.0},
            {"eta": 1.0, "step_size": 0.1, "loss": 1.5, "grad_change": 0.3, "beta": 4.0},
            {"eta": 2.0, "step_size": 0.2, "loss": math.inf, "grad_change": math.nan, "beta": math.nan}]
    assert summarise_probe(rows) == {"loss_min": 1.5, "loss_max": 2.0, "grad_change_min": 0.1,
                                     "grad_change_max": 0.3, "beta_max": 4.0}


def test_last_layer_grad():
    model = mlp()
    xb, yb = batch(model)
    with pytest.raises(RuntimeError):
        last_layer_grad(model)
    backward(model, xb, yb)
    out = model.head.out.linear
    g = last_layer_grad(model)
    assert torch.equal(g, torch.cat([out.weight.grad.flatten(), out.bias.grad.flatten()]))
    g.zero_()  # a copy: the model's grads are untouched
    assert out.weight.grad.abs().sum() > 0


def train(probe_method, steps=20, every=3):
    """A short training run (BN + dropout, Adam); probes every `every` steps between backward and step."""
    model = cnn(torch.float32, dropout=0.3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    data = torch.Generator().manual_seed(2)
    x = torch.randn(64, 1, 8, 8, generator=data)
    y = torch.randint(0, 3, (64,), generator=data)
    torch.manual_seed(3)  # the dropout stream
    losses, probes = [], []
    model.train()
    for step in range(1, steps + 1):
        idx = torch.randperm(64, generator=data)[:16]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if probe_method and step % every == 0:
            probes.append(probe_step(model, x[idx], y[idx], 1e-2, ETAS, method=probe_method))
        opt.step()
        losses.append(loss.item())
    return model, losses, probes


def test_probes_do_not_change_training():
    ref, ref_losses, _ = train(None)
    for method in ("loop", "vmap"):
        model, losses, probes = train(method)
        assert len(probes) == 6 and all(len(p) == len(ETAS) for p in probes)
        assert losses == ref_losses
        for (n, a), b in zip(ref.state_dict().items(), model.state_dict().values()):
            assert torch.equal(a, b), n
