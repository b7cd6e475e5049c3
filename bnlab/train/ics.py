"""Internal covariate shift per layer, measured as Santurkar et al. (2018), Definition 2.1, during training.

For weight layer i at optimizer step t, on the step's own batch (x^t, y^t):

    G_i  = d L(W_1^t, ..., W_k^t; x^t, y^t) / d W_i                 (the step's own gradient)
    G'_i = d L(W_1^{t+1}, ..., W_{i-1}^{t+1}, W_i^t, ..., W_k^t; x^t, y^t) / d W_i

i.e. G' is the gradient of layer i's weights after only the layers *before* i
have taken this step's update. Recorded per (step, layer): l2 = ||G - G'||_2,
cosine = cos(G, G') and grad_norm = ||G||_2 (so l2 / grad_norm is the relative
shift).

"Layers" are the model's nn.Linear and nn.Conv2d modules; "before i" is
parameter registration order, which is forward order in bnlab's models
(layers.assemble): everything registered before W_i (earlier weights and
biases, and the BN scale/shift between them, input BN included) is at
W^{t+1}, W_i and everything after it (its own bias, its BN) at W^t. A layer
with nothing trainable before it (layer 1 without input BN) has G' = G by
definition and gets no row. In MiniGoogLeNet's parallel branches an earlier
sibling branch counts as "before" (registration order), although it does not
feed the layer's input.

The measurement leaves training exactly as it was:
- the model's parameters and p.grad are never written: G' comes from
  torch.func.functional_call on copies and torch.autograd.grad;
- BN running statistics and num_batches_tracked (torch's BN and bnlab's own,
  bnlab/models/bnlab_bn.py, alike: both keep them as registered buffers) are
  updated only on fresh copies of every buffer;
- the torch RNG: before each evaluation it is set to the state saved before
  the step's own forward, so dropout draws the step's own masks, and on exit
  it is restored to the state found at entry (the state after the step);
- BN runs in train mode on the batch's statistics, as in the step itself.

    rng = rng_state(x.device)          # before the step's forward
    loss.backward(); old, grads = snapshot(model); optimizer.step()
    rows = ics_step(model, x, y, old, grads, rng)   # after optimizer.step()
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from bnlab.train.probes import preserved_state

WEIGHT_LAYERS = (nn.Linear, nn.Conv2d)
ICS_COLUMNS = ("layer_index", "layer", "l2", "cosine", "grad_norm")

LossFn = Callable[[Tensor, Tensor], Tensor]
RngState = tuple[Tensor, Tensor | None]


@dataclass(frozen=True)
class IcsLayer:
    index: int  # 1-based position among the model's weight layers
    module: str  # module name, e.g. "features.conv2.conv"
    weight: str  # its weight's parameter name
    before: frozenset[str]  # trainable parameters registered before the weight (at W^{t+1} for G')


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every nn.Linear / nn.Conv2d, in registration (= forward) order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)]


def ics_layers(model: nn.Module) -> list[IcsLayer]:
    """The weight layers whose ICS is defined: a trainable weight with a trainable parameter before it."""
    order = [n for n, p in model.named_parameters() if p.requires_grad]
    position = {n: i for i, n in enumerate(order)}
    out = []
    for index, (name, module) in enumerate(weight_layers(model), start=1):
        weight = f"{name}.weight" if name else "weight"
        if weight not in position:  # frozen weight
            continue
        before = frozenset(order[: position[weight]])
        if before:
            out.append(IcsLayer(index=index, module=name, weight=weight, before=before))
    return out


def rng_state(device: torch.device) -> RngState:
    """The torch RNG state(s) dropout draws from on `device` (CPU, plus CUDA on a GPU)."""
    return torch.get_rng_state(), (torch.cuda.get_rng_state(device) if device.type == "cuda" else None)


def set_rng_state(state: RngState, device: torch.device) -> None:
    cpu, cuda = state
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state(cuda, device)


def snapshot(model: nn.Module, layers: list[IcsLayer] | None = None) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(W^t of every trainable parameter, G of every ICS layer's weight): copies, taken before optimizer.step()."""
    named = dict(model.named_parameters())
    old = {n: p.detach().clone() for n, p in named.items() if p.requires_grad}
    grads = {}
    for layer in ics_layers(model) if layers is None else layers:
        g = named[layer.weight].grad
        if g is not None:
            grads[layer.weight] = g.detach().clone()
    return old, grads


def _norm64(t: Tensor) -> Tensor:
    return torch.linalg.vector_norm(t, dtype=torch.float64)


def compare(g: Tensor, g_prime: Tensor) -> dict:
    """l2 = ||g - g'||, cosine(g, g') (nan if either is 0) and grad_norm = ||g||, in float64."""
    a, b = g.detach().double().flatten(), g_prime.detach().double().flatten()
    na, nb = _norm64(a), _norm64(b)
    cos = float(torch.dot(a, b) / (na * nb)) if float(na) > 0 and float(nb) > 0 else float("nan")
    return {"l2": float(_norm64(a - b)), "cosine": cos, "grad_norm": float(na)}


def ics_step(
    model: nn.Module,
    xb: Tensor,
    yb: Tensor,
    old: dict[str, Tensor],
    grads: dict[str, Tensor],
    rng_before_forward: RngState,
    *,
    loss_fn: LossFn = F.cross_entropy,
    layers: list[IcsLayer] | None = None,
) -> list[dict]:
    """ICS rows {layer_index, layer, l2, cosine, grad_norm} of one step, one per ICS layer.

    Call after optimizer.step() (the model holds W^{t+1}) with the step's batch,
    `old`/`grads` from snapshot() taken before the step, and the RNG state saved
    before the step's forward. Leaves the model, its grads and buffers, and the
    RNG state as it found them (see the module docstring).
    """
    layers = ics_layers(model) if layers is None else layers
    named = list(model.named_parameters())
    new = {n: p.detach() for n, p in named if p.requires_grad}
    frozen = {n: p.detach() for n, p in named if not p.requires_grad}
    buffers = dict(model.named_buffers())
    rows = []
    with preserved_state(model, xb.device), torch.enable_grad():  # the probes' guard: same flags, same RNG
        for layer in layers:
            g = grads.get(layer.weight)
            if g is None:  # the weight had no gradient this step
                continue
            params = {n: (new[n] if n in layer.before else old[n]) for n in new}
            w = old[layer.weight].clone().requires_grad_(True)  # only W_i needs a gradient: backward stops there
            params[layer.weight] = w
            state = {n: b.clone() for n, b in buffers.items()}  # BN's running-stat update lands on copies
            set_rng_state(rng_before_forward, xb.device)  # the step's own dropout masks
            loss = loss_fn(functional_call(model, (params, frozen, state), (xb,)), yb)
            (g_prime,) = torch.autograd.grad(loss, [w])
            rows.append({"layer_index": layer.index, "layer": layer.module, **compare(g, g_prime)})
    return rows


class ICSHook:
    """ICS as a per-step hook (bnlab/train/hooks.py): the RNG state before the step's forward (its dropout
    masks), W^t and G before the update, then each layer's gradient with only the layers before it updated;
    its time is left out of the training time. Never due on a model without an ICS layer."""

    name = "ics"  # bnlab/instruments.py
    COLUMNS = ICS_COLUMNS
    excluded = True

    def __init__(self, model: nn.Module, every: int) -> None:
        self.layers = ics_layers(model)
        self.every = every if self.layers else 0
        self.rng: RngState | None = None
        self.old: tuple[dict[str, Tensor], dict[str, Tensor]] | None = None

    @classmethod
    def for_run(cls, run, model: nn.Module) -> "ICSHook":
        return cls(model, run.ics_every)

    def before_forward(self, device: torch.device) -> None:
        self.rng = rng_state(device)

    def before_update(self, model: nn.Module, xb: Tensor, yb: Tensor, lr: float) -> None:
        self.old = snapshot(model, self.layers)  # copies: the optimizer writes parameters in place

    def after_update(self, model: nn.Module, xb: Tensor, yb: Tensor, loss: Tensor) -> list[dict]:
        (w_old, g_old), rng = self.old, self.rng
        self.old = self.rng = None
        if not math.isfinite(float(loss.detach())):
            return []
        # same batch and masks; parameters, grads, BN statistics and RNG are left as they are
        return list(ics_step(model, xb, yb, w_old, g_old, rng, layers=self.layers))
