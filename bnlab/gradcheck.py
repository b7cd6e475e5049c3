"""Gradient check of a k-layer network with BN against numerical gradients (seed 001 s1).

The seed checks its hand-written gradients of a 3-layer MLP with hidden widths
[50, 50] and BN on the hidden layers against ComputeGradsNumSlow on a reduced
set (n=2), per parameter W, b, gamma, beta of each layer, max |analytic -
numerical| against a threshold of 1e-5. Here the hand-written part is bnlab's
BN backward (models/bnlab_bn.py); Linear, ReLU and the loss are torch's
autograd. Everything runs in float64.

    df = check_network(bn_impl="bnlab", widths=(50, 50), n=8, d=20)
    cmp = compare_with_torch()
    build_section("results/gradcheck")     # -> results/gradcheck/section.json
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bnlab.models import create_model
from bnlab.models.bnlab_bn import BatchNormFunction, BnlabBatchNorm1d, BnlabBatchNorm2d, _per_channel, _reduce_dims
from bnlab.models.layers import BN_KIND_ATTR
from bnlab.runfolder import write_json

SEED_THRESHOLD = 1e-5  # seed 001: "I checked those against a threshold (1e-5)"
REL_EPS = 1e-8  # floor of the relative difference's denominator, |a - n| / max(REL_EPS, |a| + |n|)

LossFn = Callable[[Tensor, Tensor], Tensor]


# ---------------------------------------------------------------- gradients


def parameter_labels(model: nn.Module) -> dict[str, tuple[int, str]]:
    """Qualified parameter name -> (layer, 'W' | 'b' | 'gamma' | 'beta'), seed-style.

    Layers are counted by their Linear/Conv2d in forward (= registration)
    order; a BN's gamma/beta belong to the layer whose output it normalises,
    an input BN to layer 0.
    """
    labels: dict[str, tuple[int, str]] = {}
    layer = 0
    for prefix, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            layer += 1
            names = {"weight": "W", "bias": "b"}
        elif hasattr(module, BN_KIND_ATTR) or isinstance(module, nn.modules.batchnorm._BatchNorm):
            names = {"weight": "gamma", "bias": "beta"}
        else:
            continue
        for pname, _ in module.named_parameters(recurse=False):
            labels[f"{prefix}.{pname}" if prefix else pname] = (layer, names[pname])
    return labels


def _check_float64(model: nn.Module, x: Tensor) -> None:
    bad = [name for name, p in model.named_parameters() if p.dtype != torch.float64]
    if bad or x.dtype != torch.float64:
        raise ValueError(f"the gradient check runs in float64; convert model and input (.double()); "
                         f"not float64: {bad or ['x']}")


@contextlib.contextmanager
def _buffers_restored(model: nn.Module) -> Iterator[None]:
    """Training-mode forwards move BN running stats; put them back afterwards."""
    saved = {name: b.clone() for name, b in model.named_buffers()}
    try:
        yield
    finally:
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(saved[name])


def analytic_gradients(model: nn.Module, x: Tensor, y: Tensor, loss_fn: LossFn = F.cross_entropy) -> dict[str, Tensor]:
    """dL/dparam by backprop (through the model's BN backward), per qualified parameter name."""
    _check_float64(model, x)
    model.zero_grad(set_to_none=True)
    with _buffers_restored(model):
        loss_fn(model(x), y).backward()
    grads = {name: p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
             for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    return grads


@torch.no_grad()
def numerical_gradients(model: nn.Module, x: Tensor, y: Tensor, h: float = 1e-6,
                        loss_fn: LossFn = F.cross_entropy) -> dict[str, Tensor]:
    """dL/dparam by centered differences, (L(p + h) - L(p - h)) / 2h, for every parameter element.

    Costs two forward passes per parameter value: small networks only. The
    model keeps its mode (train mode: BN uses batch statistics, as in the
    seed's check); running statistics and parameters are left as they were.
    """
    _check_float64(model, x)
    grads: dict[str, Tensor] = {}
    with _buffers_restored(model):
        for name, p in model.named_parameters():
            g = torch.zeros_like(p)
            flat, gflat = p.view(-1), g.view(-1)
            for i in range(flat.numel()):
                old = flat[i].item()
                flat[i] = old + h
                plus = loss_fn(model(x), y).item()
                flat[i] = old - h
                minus = loss_fn(model(x), y).item()
                flat[i] = old
                gflat[i] = (plus - minus) / (2 * h)
            grads[name] = g
    return grads


def compare_gradients(model: nn.Module, analytic: dict[str, Tensor], numerical: dict[str, Tensor],
                      rel_eps: float = REL_EPS) -> pd.DataFrame:
    """One row per parameter: layer, name, shape, max |a|, max |a - n|, max |a - n| / max(rel_eps, |a| + |n|)."""
    labels = parameter_labels(model)
    rows = []
    for qualified, a in analytic.items():
        n = numerical[qualified]
        layer, name = labels.get(qualified, (0, qualified))
        diff = (a - n).abs()
        rel = diff / torch.clamp(a.abs() + n.abs(), min=rel_eps)
        rows.append({
            "layer": layer, "name": name, "parameter": f"{name}{layer}", "qualified": qualified,
            "shape": "x".join(map(str, a.shape)), "numel": a.numel(),
            "max_abs_grad": float(a.abs().max()), "max_abs_diff": float(diff.max()),
            "max_rel_diff": float(rel.max()),
        })
    order = {"W": 0, "b": 1, "gamma": 2, "beta": 3}
    return (pd.DataFrame(rows).sort_values(["layer", "name"], key=lambda s: s.map(order) if s.name == "name" else s)
            .reset_index(drop=True))


def gradcheck_model(bn_impl: str = "bnlab", widths: Sequence[int] = (50, 50), d: int = 20,
                    num_classes: int = 10, seed: int = 0, perturb_bn: bool = True) -> nn.Module:
    """The seed's network in float64: MLP d -> widths -> num_classes, BN on the hidden layers, He init.

    perturb_bn draws gamma ~ U(0.5, 1.5), beta ~ N(0, 0.1^2) instead of 1 and 0,
    so that a backward that forgets a factor gamma cannot pass by luck.
    """
    torch.manual_seed(seed)
    model = create_model("mlp", input_shape=(d, 1, 1), num_classes=num_classes, widths=list(widths),
                         bn="hidden", bn_impl=bn_impl, init="kaiming").double()
    if perturb_bn:
        with torch.no_grad():
            for module in model.modules():
                if hasattr(module, BN_KIND_ATTR):
                    module.weight.uniform_(0.5, 1.5)
                    module.bias.normal_(0.0, 0.1)
    return model


def check_network(bn_impl: str = "bnlab", widths: Sequence[int] = (50, 50), n: int = 8, d: int = 20,
                  num_classes: int = 10, seed: int = 0, h: float = 1e-6, perturb_bn: bool = True,
                  rel_eps: float = REL_EPS) -> pd.DataFrame:
    """Seed 001's check: analytic vs numerical gradients of a (len(widths)+1)-layer MLP with hidden BN.

    A random batch of n samples of dimension d (the seed's "reduced set"),
    labels uniform over num_classes, cross-entropy loss, model in train mode.
    Returns compare_gradients' table (one row per parameter tensor).
    """
    model = gradcheck_model(bn_impl, widths, d, num_classes, seed, perturb_bn)
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(n, d, 1, 1, dtype=torch.float64, generator=gen)
    y = torch.randint(0, num_classes, (n,), generator=gen)
    model.train()
    return compare_gradients(model, analytic_gradients(model, x, y), numerical_gradients(model, x, y, h), rel_eps)


# ------------------------------------------------------- a check that can fail


def _backward_without_xhat_term(ctx, grad_y, _grad_mean, _grad_var):
    """BatchNormFunction.backward with the - x_hat * dgamma term of dx dropped (the variance path)."""
    x_hat, inv_std, weight = ctx.saved_tensors
    dims = _reduce_dims(x_hat)
    m = x_hat.numel() // x_hat.shape[1]
    dbeta = grad_y.sum(dim=dims)
    dgamma = (grad_y * x_hat).sum(dim=dims)
    dx = _per_channel(weight * inv_std / m, x_hat) * (m * grad_y - _per_channel(dbeta, x_hat))
    return dx, dgamma, dbeta, None


@contextlib.contextmanager
def broken_bn_backward() -> Iterator[None]:
    """Within the block, bnlab BN's backward ignores the variance's dependence on x (a classic bug)."""
    original = BatchNormFunction.__dict__["backward"]
    BatchNormFunction.backward = staticmethod(_backward_without_xhat_term)
    try:
        yield
    finally:
        BatchNormFunction.backward = original


# ------------------------------------------------------ agreement with torch


def _pair(dims: int, channels: int, momentum: float, dtype: torch.dtype) -> tuple[nn.Module, nn.Module]:
    ours = (BnlabBatchNorm1d if dims == 1 else BnlabBatchNorm2d)(channels, momentum=momentum).to(dtype)
    ref = (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(channels, momentum=momentum).to(dtype)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5)
        ours.bias.normal_(0.0, 0.5)
    ref.load_state_dict(ours.state_dict())
    return ours, ref


def _maxdiff(a: Tensor, b: Tensor) -> float:
    return float((a.detach().double() - b.detach().double()).abs().max())


def compare_with_torch(dims: int = 2, n: int = 8, channels: int = 6, hw: tuple[int, int] = (5, 5),
                       steps: int = 3, momentum: float = 0.1, dtype: torch.dtype = torch.float64,
                       seed: int = 0) -> pd.DataFrame:
    """bnlab BN vs torch.nn.BatchNorm{dims}d from the same parameters on the same inputs.

    `steps` training-mode passes on fresh batches (per-channel offsets and
    scales, so running statistics have something to track) with a random
    upstream gradient, then one eval-mode pass. Returns rows (quantity,
    max_abs_diff, max_abs_value): outputs, dL/dx, dL/dgamma, dL/dbeta (max
    over the steps), running_mean / running_var after the steps, eval outputs.
    """
    torch.manual_seed(seed)
    ours, ref = _pair(dims, channels, momentum, dtype)
    shape = (n, channels) if dims == 1 else (n, channels, *hw)
    worst: dict[str, list[float]] = {}

    def note(q: str, a: Tensor, b: Tensor) -> None:
        d, v = _maxdiff(a, b), float(b.detach().double().abs().max())
        old = worst.get(q, [0.0, 0.0])
        worst[q] = [max(old[0], d), max(old[1], v)]

    for _ in range(steps):
        offset = _per_channel(torch.randn(channels, dtype=dtype) * 3, torch.empty(shape))
        scale = _per_channel(torch.rand(channels, dtype=dtype) * 2 + 0.5, torch.empty(shape))
        x = torch.randn(shape, dtype=dtype) * scale + offset
        upstream = torch.randn(shape, dtype=dtype)
        xs = []
        for module in (ours, ref):
            module.train()
            module.zero_grad(set_to_none=True)
            xi = x.clone().requires_grad_(True)
            out = module(xi)
            (out * upstream).sum().backward()
            xs.append((xi, out))
        (xa, ya), (xb, yb) = xs
        note("output (train)", ya, yb)
        note("dL/dx", xa.grad, xb.grad)
        note("dL/dgamma", ours.weight.grad, ref.weight.grad)
        note("dL/dbeta", ours.bias.grad, ref.bias.grad)
    note(f"running_mean after {steps} steps", ours.running_mean, ref.running_mean)
    note(f"running_var after {steps} steps", ours.running_var, ref.running_var)
    if int(ours.num_batches_tracked) != int(ref.num_batches_tracked):
        raise AssertionError("num_batches_tracked differs from torch's")
    ours.eval()
    ref.eval()
    x = torch.randn(shape, dtype=dtype) * 2 + 1
    with torch.no_grad():
        note("output (eval, running stats)", ours(x), ref(x))
    return pd.DataFrame([{"quantity": q, "max_abs_diff": d, "max_abs_value": v} for q, (d, v) in worst.items()])


# ------------------------------------------------------------- report section


def fmt_e(x: float) -> str:
    """2.2e-11 style; exact zero as 0."""
    return "0" if x == 0 else f"{x:.1e}"


def build_section(out_dir: str | Path, seed: int = 0, ns: Sequence[int] = (2, 8), d: int = 20,
                  widths: Sequence[int] = (50, 50)) -> dict[str, float]:
    """Run the gradient check and the torch comparison; write out_dir/section.json (tables, findings).

    Returns the numbers the tables and findings print, by name (the gradcheck
    analysis's measures): max_rel_error / max_abs_error of bnlab's BN over every
    batch size, torch_max_abs_error, broken_max_abs_error, and
    vs_torch_max_abs_diff_<dtype> / vs_torch_max_rel_diff_<dtype>.
    """
    out_dir = Path(out_dir)
    layers = len(widths) + 1
    checks = {n: check_network("bnlab", widths, n=n, d=d, seed=seed) for n in ns}
    reference = check_network("torch", widths, n=max(ns), d=d, seed=seed)  # the check's own noise floor
    with broken_bn_backward():
        broken = check_network("bnlab", widths, n=max(ns), d=d, seed=seed)

    first = checks[ns[0]]
    header = ["parameter", "shape"]
    for n in ns:
        header += [f"max |grad| (n={n})", f"max abs diff (n={n})", f"max rel diff (n={n})"]
    rows = []
    for i, r in first.iterrows():
        row = [r["parameter"], r["shape"]]
        for n in ns:
            c = checks[n].iloc[i]
            row += [fmt_e(c["max_abs_grad"]), fmt_e(c["max_abs_diff"]), fmt_e(c["max_rel_diff"])]
        rows.append(row)
    grad_table = {
        "caption": f"Seed 001's gradient check with bnlab's BN (hand-written backward): {layers}-layer MLP, "
                   f"hidden widths {list(widths)}, BN on the hidden layers, {d} input dimensions, n random "
                   f"samples, cross-entropy, float64; analytic (backprop) vs centered differences (h=1e-6). "
                   f"Relative diff = |a-n| / max({REL_EPS:g}, |a|+|n|). Hidden Linear layers have no bias "
                   f"(BN's beta takes its role), so there is no b1, b2.",
        "header": header, "rows": rows,
    }

    variants = [(1, torch.float64), (2, torch.float64), (1, torch.float32), (2, torch.float32)]
    cmps = {(dims, dt): compare_with_torch(dims=dims, dtype=dt, seed=seed) for dims, dt in variants}
    names = {torch.float64: "float64", torch.float32: "float32"}
    quantities = list(cmps[variants[0]]["quantity"])
    cmp_rows = [[q] + [fmt_e(cmps[v].set_index("quantity").loc[q, "max_abs_diff"]) for v in variants]
                for q in quantities]
    cmp_table = {
        "caption": "bnlab BN vs torch.nn.BatchNorm1d (inputs 8x6) and BatchNorm2d (8x6x5x5) from the same "
                   "gamma/beta on the same batches: max absolute difference over 3 training steps (random "
                   "upstream gradients), of the running statistics after them (momentum 0.1, unbiased "
                   "variance) and of the eval-mode outputs.",
        "header": ["quantity"] + [f"BatchNorm{dims}d {names[dt]}" for dims, dt in variants],
        "rows": cmp_rows,
    }

    findings = []
    all_checks = pd.concat([c.assign(n=n) for n, c in checks.items()], ignore_index=True)
    top = all_checks.loc[all_checks["max_abs_diff"].idxmax()]
    below = SEED_THRESHOLD / top["max_abs_diff"] if top["max_abs_diff"] > 0 else float("inf")
    findings.append(
        f"Largest analytic-vs-numerical difference over all parameters and batch sizes: "
        f"{fmt_e(top['max_abs_diff'])} ({top['parameter']}, n={top['n']}), "
        + ("below" if top["max_abs_diff"] < SEED_THRESHOLD else "ABOVE")
        + f" the seed's threshold {SEED_THRESHOLD:g}"
        + (f" by a factor of about {below:.0e}" if 1 < below < float("inf") else "")
        + f"; the seed reports at most 3.3e-11. The same check with torch's own BatchNorm (n={max(ns)}) gives "
        f"{fmt_e(float(reference['max_abs_diff'].max()))}: at h=1e-6 the centered difference's rounding error, "
        "about float64 epsilon / h = 2e-10 per unit of loss, is of this order for any correct backward."
    )
    btop = broken.loc[broken["max_abs_diff"].idxmax()]
    findings.append(
        f"The check can fail: with the variance term (- x_hat * dgamma) dropped from BN's dx, the largest "
        f"difference (n={max(ns)}) is {fmt_e(btop['max_abs_diff'])} at {btop['parameter']} "
        f"(relative {fmt_e(btop['max_rel_diff'])}), "
        + ("above" if btop["max_abs_diff"] > SEED_THRESHOLD else "yet still below")
        + f" the 1e-5 threshold."
    )
    def worst(dt: torch.dtype) -> tuple[float, float]:
        # largest abs difference, and largest abs difference relative to the quantity's largest value
        frames = [cmps[v] for v in variants if v[1] == dt]
        return (max(float(f["max_abs_diff"].max()) for f in frames),
                max(float((f["max_abs_diff"] / f["max_abs_value"]).max()) for f in frames))

    (a64, r64), (a32, r32) = worst(torch.float64), worst(torch.float32)
    findings.append(
        f"bnlab's BN matches torch.nn.BatchNorm1d/2d to within {fmt_e(a64)} in float64 "
        f"({fmt_e(r64)} relative to the largest value of the quantity) and {fmt_e(a32)} in float32 "
        f"({fmt_e(r32)} relative): outputs, input and gamma/beta gradients, running statistics, eval outputs."
    )
    if 2 in checks and len(ns) > 1:
        w1 = {n: float(c.loc[c["parameter"] == "W1", "max_abs_grad"].iloc[0]) for n, c in checks.items()}
        other = max(n for n in ns if n != 2)
        findings.append(
            f"With n=2 (the seed's reduced set) every BN channel normalises its two values to "
            f"+-sqrt(var/(var+eps)), nearly +-1 whatever the input, so almost no gradient reaches the first "
            f"layer: max |dL/dW1| = {fmt_e(w1[2])} at n=2 against {fmt_e(w1[other])} at n={other}. "
            f"A check at n=2 hardly exercises BN's dx; the n={other} column does."
        )
    write_json(out_dir / "section.json", {"tables": [grad_table, cmp_table], "figures": [], "findings": findings})
    return {"max_rel_error": float(all_checks["max_rel_diff"].max()),
            "max_abs_error": float(all_checks["max_abs_diff"].max()),
            "torch_max_abs_error": float(reference["max_abs_diff"].max()),
            "broken_max_abs_error": float(broken["max_abs_diff"].max()),
            "vs_torch_max_abs_diff_float64": a64, "vs_torch_max_rel_diff_float64": r64,
            "vs_torch_max_abs_diff_float32": a32, "vs_torch_max_rel_diff_float32": r32}
