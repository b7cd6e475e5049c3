"""Gradient checks of a k-layer network with BN against numerical gradients (seed 001 s1).

The seed checks its hand-written gradients of a 3-layer MLP with hidden widths
[50, 50] and BN on the hidden layers against ComputeGradsNumSlow on a reduced
set (n=2), per parameter W, b, gamma, beta of each layer, max |analytic -
numerical| against a threshold of 1e-5. Two checks here, everything in float64:

- the whole network by hand (manual_check): bnlab's mlp (bn: hidden, relu)
  with its forward and backward written out without autograd
  (bnlab/analyses/gradient_check/manual_mlp.py), on n real training images of a prepared dataset,
  against centred differences, per parameter beside the seed's numbers, and
  against autograd on the torch model;
- bnlab's BN layer (check_network): its hand-written backward (models/bnlab_bn.py)
  inside an autograd network (Linear, ReLU and the loss are torch's) on random
  inputs, and against torch.nn.BatchNorm (compare_with_torch).

    mc = manual_check("results/data/fashion_mnist.pt", widths=(50, 50), n=2)
    df = check_network(bn_impl="bnlab", widths=(50, 50), n=8, d=20)
    cmp = compare_with_torch()
    build_section("results/gradcheck", "results/data/fashion_mnist.pt")   # -> section.json
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bnlab.analyses.gradient_check import manual_mlp
from bnlab.data.catalog import display_name
from bnlab.data.prepared import load_prepared
from bnlab.data.subsets import stratified_subset
from bnlab.models import create_model
from bnlab.models.bnlab_bn import (BatchNormFunction, BnlabBatchNorm1d, BnlabBatchNorm2d, _per_channel,
                                   batch_norm_backward)
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
                    num_classes: int = 10, seed: int = 0, perturb_bn: bool = True,
                    input_shape: tuple[int, int, int] | None = None) -> nn.Module:
    """The seed's network in float64: MLP d -> widths -> num_classes, BN on the hidden layers, He init.

    input_shape (C, H, W) replaces (d, 1, 1) for images. perturb_bn draws
    gamma ~ U(0.5, 1.5), beta ~ N(0, 0.1^2) instead of 1 and 0, so that a
    backward that forgets a factor gamma cannot pass by luck.
    """
    torch.manual_seed(seed)
    model = create_model("mlp", input_shape=input_shape or (d, 1, 1), num_classes=num_classes,
                         widths=list(widths), bn="hidden", bn_impl=bn_impl, init="kaiming").double()
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
    return batch_norm_backward(ctx, grad_y, variance_path=False)


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


# ------------------------------------------- the whole network by hand, on real images

# Seed 001, section 1: the largest |analytic - numerical| per parameter the seed reports for its
# hand-written gradients of a 3-layer MLP [50, 50] with BN, n = 2 CIFAR-10 images, ComputeGradsNumSlow.
SEED_DIFFS: dict[str, float] = {
    "W1": 2.2204e-11, "b1": 2.2204e-11, "gamma1": 2.2356e-11, "beta1": 2.2356e-11,
    "W2": 4.1234e-13, "b2": 2.2204e-16, "gamma2": 3.3339e-11, "beta2": 3.3339e-11,
    "W3": 2.3122e-11, "b3": 2.4201e-11,
}
# The centred differences' step: 1e-6, as in check_network. DD2424's ComputeGradsNumSlow is run with
# h = 1e-5 (the seed's 2.2204e-11 is float64 epsilon / 1e-5, one rounding step of the cost over h). With
# n = 2 a BN channel's batch variance is that of two values and can come near eps or below it; there the
# cost bends sharply, the gradient is large and the centred difference's truncation error (of order h^2)
# dominates. Measured on Fashion-MNIST, [50, 50], seeds 0-9 (W1 sampled as below): max |a - n| at
# h=1e-5 up to 2.7e-4 (seed 2) and 2.2 (seed 8: a channel variance 1.7e-7, a gradient of -108.6), 100x
# less at h=1e-6 (2.6e-6; 2.2e-2); the other seeds at most 2.1e-8 at 1e-6, where rounding is ~5e-10.
MANUAL_H = 1e-6
MANUAL_L2 = 0.005  # the seed's lambda (sections 2-3), so that the check covers the L2 term's gradient too
# Centred differences cost two forwards of the hand-written network per entry: 1.1 ms for n = 2 on
# 784-d input on one thread here, so all 42,510 entries of the [50, 50] net (b1, b2 included) on
# Fashion-MNIST took 46.1 s, W1's 39,200 of them about 42 s. A tensor with more than FULL_CHECK_LIMIT
# entries (W1 on 784-d or 3072-d input) is therefore checked on a seeded sample of SAMPLE_SIZE entries,
# every other tensor (W1 on digits' 64-d input too) in full: 3,810 entries, 4.2 s. (Max |a - n| over
# all of W1 there: 5.0e-8 at h=1e-6; over the sample: 2.1e-8.)
FULL_CHECK_LIMIT = 5000
SAMPLE_SIZE = 500


def standardised(x_uint8: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """uint8 images [N, C, H, W] -> float64 (x / 255 - mean_c) / std_c: training's standardisation
    (bnlab.train.tensors, with data.normalize true), in float64."""
    x = x_uint8.to(torch.float64) / 255.0
    return (x - mean.to(torch.float64).view(1, -1, 1, 1)) / std.to(torch.float64).view(1, -1, 1, 1)


@dataclass
class Images:
    x: Tensor  # float64 [n, C, H, W], standardised
    y: Tensor  # int64 [n]
    dataset: str
    index: list[int]  # positions in the dataset's official training split (train_x)
    num_classes: int


def load_images(data_file: str | Path, n: int = 2, seed: int = 0) -> Images:
    """n training images of a prepared dataset file: a seeded class-stratified choice (bnlab.data.subsets)
    from the training part of its train/val split, standardised as in training."""
    data = load_prepared(data_file)
    positions = stratified_subset(data.train_y[data.train_idx], n, seed=seed)
    index = data.train_idx[positions]
    return Images(x=standardised(data.train_x[index], data.mean, data.std), y=data.train_y[index].clone(),
                  dataset=data.name, index=[int(i) for i in index], num_classes=data.num_classes)


def checked_entries(params: dict[str, Tensor], seed: int = 0, full_limit: int = FULL_CHECK_LIMIT,
                    sample: int = SAMPLE_SIZE) -> dict[str, Tensor]:
    """Flat indices to difference: all of a tensor of at most full_limit entries, else a seeded sample."""
    gen = torch.Generator().manual_seed(seed)
    return {name: (torch.arange(p.numel()) if p.numel() <= full_limit
                   else torch.randperm(p.numel(), generator=gen)[:sample].sort().values)
            for name, p in params.items()}


def _model_loss(model: nn.Module, x: Tensor, y: Tensor, l2: float) -> Tensor:
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    return F.cross_entropy(model(x), y) + l2 * sum((w ** 2).sum() for w in weights)


def seed_order(names: Sequence[str]) -> list[str]:
    """W1, b1, gamma1, beta1, W2, ..., Wk, bk: the seed's order."""
    rank = {"W": 0, "b": 1, "gamma": 2, "beta": 3}
    parts = [re.fullmatch(r"([a-zA-Z]+)(\d+)", name).groups() for name in names]
    return [f"{kind}{layer}" for layer, _, kind in sorted((int(layer), rank[kind], kind) for kind, layer in parts)]


def _diff_table(analytic: dict[str, Tensor], numerical: dict[str, Tensor], entries: dict[str, Tensor],
                rel_eps: float) -> pd.DataFrame:
    rows = []
    for name in seed_order(list(analytic)):
        a, idx = analytic[name].reshape(-1), entries[name]
        a_c, n_c = a[idx], numerical[name].reshape(-1)[idx]
        diff = (a_c - n_c).abs()
        rows.append({"parameter": name, "shape": "x".join(map(str, analytic[name].shape)),
                     "numel": a.numel(), "checked": len(idx), "max_abs_grad": float(a.abs().max()),
                     "max_abs_diff": float(diff.max()),
                     "max_rel_diff": float((diff / torch.clamp(a_c.abs() + n_c.abs(), min=rel_eps)).max())})
    return pd.DataFrame(rows)


@dataclass
class ManualCheck:
    """The hand-written network's check: tables per parameter and the numbers around them."""

    table: pd.DataFrame  # correct backward vs centred differences, one row per parameter, seed's order
    broken: pd.DataFrame  # the backward without BN's mean path vs the same centred differences
    images: Images
    widths: tuple[int, ...]
    h: float
    l2: float
    loss: float
    loss_vs_model: float  # max |J_manual - J_model| over bnlab's mlp with torch's and with bnlab's BN
    vs_autograd: float  # max |manual - autograd| over the model's parameters (torch's BN, all autograd)
    vs_bnlab_bn: float  # the same against backprop through bnlab's BN layer
    min_batch_var: float  # smallest batch variance of a hidden pre-activation (BN's eps next to it)
    eps: float
    seconds: float  # the centred differences' time
    seconds_all: float  # what every entry would take at the same rate


def manual_check(data_file: str | Path, widths: Sequence[int] = (50, 50), n: int = 2, seed: int = 0,
                 h: float = MANUAL_H, l2: float = MANUAL_L2, full_limit: int = FULL_CHECK_LIMIT,
                 sample: int = SAMPLE_SIZE, rel_eps: float = REL_EPS) -> ManualCheck:
    """Seed 001's check of the whole network: bnlab's mlp (bn hidden, relu, He init, perturbed gamma/beta)
    in float64, its parameters in the hand-written forward/backward (bnlab.analyses.gradient_check.manual_mlp), n real images;
    analytic vs centred differences of the hand-written cost, and against autograd on the torch model.

    The hand-written network carries the DD2424 hidden biases b1 .. b_{k-1} as zeros (bnlab's hidden
    Linear layers have none under BN): the function is unchanged and every seed row has a number.
    """
    images = load_images(data_file, n, seed)
    x, y = images.x, images.y
    shape = tuple(int(s) for s in x.shape[1:])
    models = {impl: gradcheck_model(impl, widths, seed=seed, num_classes=images.num_classes, input_shape=shape)
              for impl in ("torch", "bnlab")}
    models["bnlab"].load_state_dict(models["torch"].state_dict())
    params, eps = manual_mlp.params_from_model(models["torch"], hidden_bias=True)
    loss, cache = manual_mlp.forward(params, x, y, eps, l2)
    analytic = manual_mlp.backward(params, cache)

    loss_vs_model, vs_autograd = 0.0, {}
    for impl, model in models.items():
        model.train()
        model.zero_grad(set_to_none=True)
        with _buffers_restored(model):
            model_loss = _model_loss(model, x, y, l2)
            model_loss.backward()
        loss_vs_model = max(loss_vs_model, abs(loss - float(model_loss.detach())))
        names = manual_mlp.model_names(model)
        vs_autograd[impl] = max(_maxdiff(analytic[names[q]], p.grad) for q, p in model.named_parameters())
        model.zero_grad(set_to_none=True)

    entries = checked_entries(params, seed, full_limit, sample)
    start = time.perf_counter()
    numerical = manual_mlp.numerical_gradients(params, x, y, eps, l2, h, entries)
    seconds = time.perf_counter() - start
    checked = sum(len(i) for i in entries.values())
    broken = manual_mlp.backward(params, cache, bn_variant="no_mean_term")
    return ManualCheck(
        table=_diff_table(analytic, numerical, entries, rel_eps),
        broken=_diff_table(broken, numerical, entries, rel_eps),
        images=images, widths=tuple(widths), h=h, l2=l2, loss=loss, loss_vs_model=loss_vs_model,
        vs_autograd=vs_autograd["torch"], vs_bnlab_bn=vs_autograd["bnlab"],
        min_batch_var=min(float(c.var.min()) for c in cache.hidden), eps=eps, seconds=seconds,
        seconds_all=seconds / checked * sum(p.numel() for p in params.values()))


def manual_section(check: ManualCheck) -> tuple[dict, list[str], dict[str, float]]:
    """The seed-form table, the findings and the measures of the hand-written network's check."""
    t, layers = check.table, len(check.widths) + 1
    name = display_name(check.images.dataset)
    n = len(check.images.y)
    rows = []
    for r in t.itertuples():
        seed = SEED_DIFFS.get(r.parameter)
        checked = f"{r.checked}" if r.checked == r.numel else f"{r.checked} of {r.numel}"
        rows.append([r.parameter, r.shape, checked, fmt_e(r.max_abs_grad), fmt_e(r.max_abs_diff),
                     fmt_e(r.max_rel_diff), "-" if seed is None else f"{seed:.4e}",
                     "yes" if r.max_abs_diff < SEED_THRESHOLD else "NO"])
    sampled = t[t["checked"] < t["numel"]]
    sample_note = "".join(
        f" {s.parameter} is checked on a seeded sample of {s.checked} of its {s.numel} entries "
        f"(two forwards per entry: all {int(t['numel'].sum())} entries would take about "
        f"{check.seconds_all:.0f} s on one thread here, the sample {check.seconds:.0f} s)."
        for s in sampled.itertuples())
    table = {
        "caption": f"Seed 001's check of the whole network, by hand: forward and backward of the {layers}-layer "
                   f"MLP (hidden widths {list(check.widths)}, BN before ReLU on the hidden layers, as bnlab's mlp "
                   f"with bn: hidden) written out without autograd (bnlab/analyses/gradient_check/manual_mlp.py), against centred "
                   f"differences of the same cost (h={check.h:g}) on n={n} {name} training images "
                   f"(standardised as in training), float64, cost = cross-entropy + {check.l2:g} sum ||W||^2. "
                   f"Ours: max |analytic - numerical| and max |a-n| / max({REL_EPS:g}, |a|+|n|); seed: its "
                   f"diff_*_max (n=2 CIFAR-10 images, ComputeGradsNumSlow); threshold {SEED_THRESHOLD:g}. "
                   f"b1, b2 are not parameters of bnlab's network (its hidden Linear layers have no bias, BN's "
                   f"beta takes its role): they are checked as zero biases added in the seed's (DD2424) form, "
                   f"which leaves the function unchanged; their gradient is 0 analytically.{sample_note}",
        "header": ["parameter", "shape", "entries checked", "max |grad|", "max abs diff (ours)",
                   "max rel diff (ours)", "seed's diff_max", f"below {SEED_THRESHOLD:g}"],
        "rows": rows,
    }
    top = t.loc[t["max_abs_diff"].idxmax()]
    below = bool((t["max_abs_diff"] < SEED_THRESHOLD).all())
    classes = ", ".join(str(int(c)) for c in check.images.y)
    findings = [
        f"Hand-written gradients of the whole network (W, b, gamma, beta of all {layers} layers, no autograd) "
        f"on n={n} {name} training images (labels {classes}): "
        + (f"every parameter is below the seed's threshold {SEED_THRESHOLD:g}" if below
           else f"NOT every parameter is below the seed's threshold {SEED_THRESHOLD:g}")
        + f"; the largest difference is {fmt_e(top['max_abs_diff'])} ({top['parameter']}, relative "
        f"{fmt_e(top['max_rel_diff'])}), the seed's largest 3.3e-11. With n={n} a hidden channel's batch "
        f"variance is that of {n} values; the smallest here is {fmt_e(check.min_batch_var)} (BN's eps "
        f"{check.eps:g}): the nearer a channel's comes to eps, the more the cost bends there, and the larger "
        f"its gradient and a centred difference's truncation error (of order h^2).",
        f"The hand-written cost equals that of bnlab's mlp model with the same parameters in training mode "
        f"to {fmt_e(check.loss_vs_model)}{' (bit for bit)' if check.loss_vs_model == 0 else ''} "
        f"(with torch's and with bnlab's BN layer), and its gradients equal "
        f"autograd's through torch's BatchNorm to {fmt_e(check.vs_autograd)} (backprop through bnlab's BN: "
        f"{fmt_e(check.vs_bnlab_bn)}), float64.",
    ]
    btop = check.broken.loc[check.broken["max_abs_diff"].idxmax()]
    findings.append(
        f"The hand-written check can fail: with the batch mean's path (dmu / n) left out of BN's backward, the "
        f"largest difference is {fmt_e(btop['max_abs_diff'])} at {btop['parameter']}, "
        + ("above" if btop["max_abs_diff"] > SEED_THRESHOLD else "yet still below")
        + f" the {SEED_THRESHOLD:g} threshold.")
    measures = {"manual_max_abs_error": float(t["max_abs_diff"].max()),
                "manual_max_rel_error": float(t["max_rel_diff"].max()),
                "manual_vs_autograd_max_abs_diff": check.vs_autograd,
                "manual_loss_vs_model_abs_diff": check.loss_vs_model,
                "manual_broken_max_abs_error": float(check.broken["max_abs_diff"].max())}
    return table, findings, measures


# ------------------------------------------------------------- report section


def fmt_e(x: float) -> str:
    """2.2e-11 style; exact zero as 0."""
    return "0" if x == 0 else f"{x:.1e}"


def build_section(out_dir: str | Path, data_file: str | Path, seed: int = 0, ns: Sequence[int] = (2, 8),
                  d: int = 20, widths: Sequence[int] = (50, 50), manual_n: int = 2) -> dict[str, float]:
    """Run the gradient checks and the torch comparison; write out_dir/section.json (tables, findings).

    First the whole network by hand (manual_check) on manual_n training images of the prepared
    dataset file data_file; then bnlab's BN layer in an autograd network on random d-dim batches of
    the sizes ns; then bnlab's BN against torch's. Returns the numbers the tables and findings print,
    by name (the gradcheck analysis's measures): manual_max_abs_error / manual_max_rel_error,
    manual_vs_autograd_max_abs_diff, manual_loss_vs_model_abs_diff, manual_broken_max_abs_error (the
    hand-written network); max_rel_error / max_abs_error of bnlab's BN over every batch size,
    torch_max_abs_error, broken_max_abs_error, and vs_torch_max_abs_diff_<dtype> /
    vs_torch_max_rel_diff_<dtype>.
    """
    out_dir = Path(out_dir)
    layers = len(widths) + 1
    manual_table, manual_findings, manual_measures = manual_section(
        manual_check(data_file, widths=widths, n=manual_n, seed=seed))
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
        "caption": f"bnlab's BN layer (hand-written backward) in an autograd network: {layers}-layer MLP, "
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
        f"bnlab's BN layer in an autograd network (random {d}-dimensional inputs): largest "
        f"analytic-vs-numerical difference over all parameters and batch sizes: "
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
            f"In the autograd network's check, with n=2 (the seed's reduced set) every BN channel normalises "
            f"its two values to +-sqrt(var/(var+eps)), nearly +-1 whatever the input (unless var is near eps), "
            f"so almost no gradient reaches the first layer: max |dL/dW1| = {fmt_e(w1[2])} at n=2 against "
            f"{fmt_e(w1[other])} at n={other}. "
            f"A check at n=2 hardly exercises BN's dx; the n={other} column does."
        )
    write_json(out_dir / "section.json", {"tables": [manual_table, grad_table, cmp_table], "figures": [],
                                          "findings": manual_findings + findings})
    return {**manual_measures,
            "max_rel_error": float(all_checks["max_rel_diff"].max()),
            "max_abs_error": float(all_checks["max_abs_diff"].max()),
            "torch_max_abs_error": float(reference["max_abs_diff"].max()),
            "broken_max_abs_error": float(broken["max_abs_diff"].max()),
            "vs_torch_max_abs_diff_float64": a64, "vs_torch_max_rel_diff_float64": r64,
            "vs_torch_max_abs_diff_float32": a32, "vs_torch_max_rel_diff_float32": r32}
