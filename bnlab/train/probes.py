"""Santurkar et al. (2018) landscape probes along the step's gradient, and the course's last-layer gradient.

At a training step with weights w, mini-batch (xb, yb) and that batch's
gradient g (p.grad, left by loss.backward()), for each multiplier eta the probe
moves to w - s g with step size s = eta * lr and evaluates, on the SAME batch
and in train mode (BN uses batch statistics, as in training):

    loss         L(w - s g)
    grad_change  || grad L(w - s g) - grad L(w) ||_2      (over all trainable parameters)
    beta         grad_change / || s g ||_2                 (nan where g = 0)

The per-step "effective beta-smoothness" is the max of beta over the etas
(`summarise_probe`). Santurkar et al. 2018's step sizes, eta in [0.5, 4] x lr, are
`etas=(0.5, 1, 2, 4)` here.

The probe leaves the model exactly as it found it, so that the optimizer step
that follows, and the rest of training, are unchanged:
- parameters and every p.grad are never written (the probe works on
  functional copies through torch.func.functional_call and torch.autograd.grad);
- BN running statistics and num_batches_tracked: the probe passes fresh copies
  of all buffers, so the module's own buffers are untouched;
- the torch RNG (CPU, and CUDA on the batch's device) is restored afterwards;
  before every evaluation it is reset to the state at probe entry, so every
  eta sees the same dropout masks (under vmap: randomness="same", which draws
  the same masks as the plain loop does);
- each module's train/eval flag is restored (the probe runs in train mode).

Dropout: the loop's p.grad was computed with a dropout mask the probe cannot
redraw (it was drawn before the probe was called). With dropout,
grad L(w) is therefore recomputed under the probe's own mask (one more
forward/backward), so that grad_change measures the move along g and not a
change of mask; `base_grad="auto"` does this exactly when the model has a
dropout layer with p > 0. The direction g is always the training step's p.grad.

Two implementations that give the same numbers: method="loop" (one
functional forward/backward per eta; measured cheaper on a CPU) and
method="vmap" (torch.func.vmap over stacked weight copies; the BN buffers are
stacked too, so their in-place running-stat updates are batched and legal).
vmap needs torch's BN: bnlab's own BN (bn_impl="bnlab") is an
autograd.Function without a vmap rule; use method="loop" there
(`check_probe_method` says so before training starts).

    rows = probe_step(model, xb, yb, lr=1e-3, etas=(0.5, 1, 2, 4))
    summarise_probe(rows)   # {"loss_min", "loss_max", "grad_change_min", "grad_change_max", "beta_max"}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, vmap

from bnlab.models.bnlab_bn import _BnlabBatchNorm

METHODS = ("loop", "vmap")
BASE_GRAD = ("auto", "given", "recompute")
PROBE_COLUMNS = ("eta", "step_size", "loss", "grad_change", "beta")

LossFn = Callable[[Tensor, Tensor], Tensor]


def has_active_dropout(model: nn.Module) -> bool:
    """True if the model has a dropout layer with p > 0: it draws random masks in train mode, where the probe runs."""
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules())


def check_probe_method(model: nn.Module, method: str) -> None:
    """Raise ValueError if `method` cannot probe this model (call it before training starts)."""
    if method not in METHODS:
        raise ValueError(f"unknown probe method {method!r}; valid values: {', '.join(METHODS)}")
    if method == "vmap" and any(isinstance(m, _BnlabBatchNorm) for m in model.modules()):
        raise ValueError("probe method 'vmap' needs torch's BatchNorm: bnlab's own BN (bn_impl='bnlab') is an "
                         "autograd.Function without a vmap rule; use method='loop'")


@contextmanager
def preserved_state(model: nn.Module, device: torch.device):
    """Train mode inside; on exit every module's training flag and the torch RNG state(s) as on entry."""
    modes = [(m, m.training) for m in model.modules()]
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    try:
        model.train()
        yield
    finally:
        for m, mode in modes:
            m.training = mode
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state(cuda_rng, device)


def _reset_rng(cpu_rng: Tensor, cuda_rng: Tensor | None, device: torch.device) -> None:
    torch.set_rng_state(cpu_rng)
    if cuda_rng is not None:
        torch.cuda.set_rng_state(cuda_rng, device)


def _norm64(t: Tensor, dim: int | None = None) -> Tensor:
    """l2 norm accumulated in float64 (both methods reduce the same way)."""
    return torch.linalg.vector_norm(t if dim is None else t.flatten(dim), dim=dim, dtype=torch.float64)


def probe_step(
    model: nn.Module,
    xb: Tensor,
    yb: Tensor,
    lr: float,
    etas: Sequence[float],
    *,
    method: str = "loop",
    loss_fn: LossFn = F.cross_entropy,
    base_grad: str = "auto",
) -> list[dict]:
    """Probe the landscape along the step's gradient p.grad; one row per eta (see the module docstring).

    Call after loss.backward() and before optimizer.step(), with the step's
    own batch. Rows: {eta, step_size = eta * lr, loss, grad_change, beta}.
    base_grad: "given" uses p.grad as grad L(w); "recompute" evaluates it
    under the probe's dropout masks; "auto" recomputes iff the model has dropout.
    Parameters with requires_grad=False are held fixed; a trainable parameter
    whose p.grad is None counts as a zero gradient.
    """
    check_probe_method(model, method)
    if base_grad not in BASE_GRAD:
        raise ValueError(f"unknown base_grad {base_grad!r}; valid values: {', '.join(BASE_GRAD)}")
    etas = [float(e) for e in etas]
    if not etas:
        return []
    recompute = base_grad == "recompute" or (base_grad == "auto" and has_active_dropout(model))

    named = list(model.named_parameters())
    trainable = {n: p.detach() for n, p in named if p.requires_grad}
    frozen = {n: p.detach() for n, p in named if not p.requires_grad}
    g = {n: (p.grad.detach() if p.grad is not None else torch.zeros_like(p)) for n, p in named if p.requires_grad}
    buffers = dict(model.named_buffers())
    g_norm = float(torch.linalg.vector_norm(torch.stack([_norm64(v) for v in g.values()]))) if g else 0.0
    device = xb.device

    steps = [e * lr for e in etas]
    # Step sizes to evaluate; 0.0 first when grad L(w) is recomputed.
    evals = ([0.0] if recompute else []) + steps

    with preserved_state(model, device), torch.enable_grad():
        cpu_rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

        def loss_at(p: dict[str, Tensor], b: dict[str, Tensor]) -> Tensor:
            return loss_fn(functional_call(model, (p, frozen, b), (xb,)), yb)

        if method == "loop":
            names = list(trainable)
            base = None if recompute else g
            losses, changes = [], []
            for s in evals:  # step 0 (recompute) comes first, so base is known for the others
                s_t = torch.tensor(s, dtype=torch.float64)
                w = {n: (trainable[n] - s_t.to(trainable[n].dtype) * g[n]).requires_grad_(True) for n in names}
                b = {n: v.clone() for n, v in buffers.items()}
                _reset_rng(cpu_rng, cuda_rng, device)
                loss = loss_at(w, b)
                gs = torch.autograd.grad(loss, [w[n] for n in names], allow_unused=True) if names else ()
                gk = {n: (gi if gi is not None else torch.zeros_like(w[n])) for n, gi in zip(names, gs)}
                if base is None:
                    base = gk
                    continue
                losses.append(float(loss.detach()))
                changes.append(float(torch.linalg.vector_norm(torch.stack([_norm64(gk[n] - base[n]) for n in names])))
                               if names else 0.0)
        else:
            k = len(evals)
            s_t = torch.tensor(evals, dtype=torch.float64, device=device)
            w = {n: v.unsqueeze(0) - s_t.to(v.dtype).view(-1, *[1] * v.dim()) * g[n].unsqueeze(0)
                 for n, v in trainable.items()}
            b = {n: v.unsqueeze(0).repeat(k, *[1] * v.dim()) for n, v in buffers.items()}
            _reset_rng(cpu_rng, cuda_rng, device)
            gs, ls = vmap(grad_and_value(loss_at), randomness="same")(w, b)
            if recompute:
                base = {n: v[0] for n, v in gs.items()}
                gs = {n: v[1:] for n, v in gs.items()}
                ls = ls[1:]
            else:
                base = g
            losses = [float(v) for v in ls.detach()]
            if gs:
                per = torch.stack([_norm64(gs[n] - base[n].unsqueeze(0), dim=1) for n in gs], dim=1)
                changes = [float(v) for v in torch.linalg.vector_norm(per, dim=1)]
            else:
                changes = [0.0] * len(steps)

    rows = []
    for eta, s, loss, change in zip(etas, steps, losses, changes):
        dist = abs(s) * g_norm
        rows.append({"eta": eta, "step_size": s, "loss": loss, "grad_change": change,
                     "beta": change / dist if dist > 0 else math.nan})
    return rows


def summarise_probe(rows: Sequence[dict]) -> dict:
    """One step's probe rows -> loss_min/max, grad_change_min/max over eta and beta_max (effective beta-smoothness).

    Non-finite values are ignored; a statistic with no finite value is nan.
    """

    def finite(key: str) -> list[float]:
        return [r[key] for r in rows if math.isfinite(r[key])]

    def pick(f, key: str) -> float:
        vals = finite(key)
        return f(vals) if vals else math.nan

    return {"loss_min": pick(min, "loss"), "loss_max": pick(max, "loss"),
            "grad_change_min": pick(min, "grad_change"), "grad_change_max": pick(max, "grad_change"),
            "beta_max": pick(max, "beta")}


def last_linear(model: nn.Module) -> nn.Linear:
    """The final nn.Linear in registration order (bnlab models register layers in forward order: the output layer)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("model has no nn.Linear layer")
    return linears[-1]


def last_layer_grad(model: nn.Module) -> Tensor:
    """Flattened gradient of the final Linear layer (weight, then bias), detached copy.

    The course method's "gradient predictiveness" at step t is
    ||last_layer_grad_t - last_layer_grad_{t-1}||_2 of consecutive steps.
    Raises RuntimeError if backward has not filled the weight's gradient.
    """
    layer = last_linear(model)
    if layer.weight.grad is None:
        raise RuntimeError("the last Linear layer has no gradient yet: call after loss.backward()")
    parts = [layer.weight.grad.detach().flatten()]
    if layer.bias is not None and layer.bias.grad is not None:
        parts.append(layer.bias.grad.detach().flatten())
    return torch.cat(parts).clone()


class ProbeHook:
    """Landscape probes as a per-step hook (bnlab/train/hooks.py): on a due step, probe_step along the step's
    gradient, after backward and before the update; its time is training time."""

    name = "probes"  # bnlab/instruments.py
    COLUMNS = PROBE_COLUMNS
    excluded = False

    def __init__(self, model: nn.Module, every: int, etas: Sequence[float]) -> None:
        self.every, self.etas, self.rows = every, etas, []

    @classmethod
    def for_run(cls, run, model: nn.Module) -> "ProbeHook":
        return cls(model, run.probe_every, run.probe_multipliers)

    def before_forward(self, device: torch.device) -> None:
        pass

    def before_update(self, model: nn.Module, xb: Tensor, yb: Tensor, lr: float) -> None:
        # the probe looks along this step's gradient, on this batch, and leaves parameters, grads,
        # BN statistics and RNG as they were
        self.rows = list(probe_step(model, xb, yb, lr, self.etas))

    def after_update(self, model: nn.Module, xb: Tensor, yb: Tensor, loss: Tensor) -> list[dict]:
        rows, self.rows = self.rows, []
        return rows
