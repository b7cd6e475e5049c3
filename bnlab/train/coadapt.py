"""A co-adaptation proxy (Hinton et al. 2012; Srivastava et al. 2014): how correlated hidden units are.

For every hidden layer, the activations of its units over a fixed set of
images (the validation curve subset), with the model in eval mode (BN on its
running statistics, no dropout masks), give a matrix A [images x units]. The
proxy is the mean absolute Pearson correlation between pairs of distinct units,
the mean of |corr(A)_jk| over j != k.

- Hidden layer = the output of each activation module (nn.ReLU / nn.Tanh /
  nn.Sigmoid, bnlab.models.layers.ACTIVATION_LAYERS), found with forward hooks,
  in registration (= forward) order.
- A conv layer's unit is a channel; its activation per image is the mean of that
  channel's map over the spatial positions.
- Units with the same value on every image (zero variance: a dead ReLU, a
  saturated tanh) have no correlation; they are left out and counted
  (`dead_units`), as are units with a non-finite value (`nonfinite_units`, a
  diverged model). With fewer than two live units the proxy is nan.

    coadaptation(model, x)   # {"layers": [{"index", "name", "kind", "units", "dead_units", ...}], ...}
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from bnlab.models.layers import ACTIVATION_LAYERS

METHOD = ("mean |Pearson correlation| over pairs of distinct hidden units of a layer, on the fixed validation "
          "subset in eval mode (no dropout masks); conv units = channels, spatially averaged per image")


def correlation_stats(acts: np.ndarray) -> dict:
    """The proxy of one layer from its activation matrix [images x units].

    Returns units, dead_units (zero variance), nonfinite_units, live_units,
    pairs (live pairs j < k) and mean_abs_corr (nan below two live units).
    """
    a = np.asarray(acts, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"activations must be [images, units], got shape {a.shape}")
    units = a.shape[1]
    finite = np.isfinite(a).all(axis=0)
    std = np.zeros(units)
    std[finite] = a[:, finite].std(axis=0)
    dead = finite & (std == 0)
    live = finite & ~dead
    k = int(live.sum())
    out = {"units": units, "dead_units": int(dead.sum()), "nonfinite_units": int((~finite).sum()),
           "live_units": k, "pairs": k * (k - 1) // 2, "mean_abs_corr": math.nan}
    if k >= 2 and a.shape[0] >= 2:
        z = a[:, live]
        z = (z - z.mean(axis=0)) / z.std(axis=0)
        corr = np.clip(z.T @ z / a.shape[0], -1.0, 1.0)
        off = ~np.eye(k, dtype=bool)
        out["mean_abs_corr"] = float(np.abs(corr[off]).mean())
    return out


def activation_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    kinds = tuple(ACTIVATION_LAYERS.values())
    return [(n, m) for n, m in model.named_modules() if isinstance(m, kinds)]


def _per_unit(out: Tensor) -> Tensor:
    """(N, C) as is; (N, C, ...) averaged over the positions after the channel dim."""
    return out if out.dim() == 2 else out.flatten(2).mean(dim=2)


@torch.no_grad()
def coadaptation(model: nn.Module, x: Tensor, *, batch: int = 256) -> dict:
    """The proxy for every hidden layer of `model` on images `x` (eval mode; the model's modes are restored)."""
    layers = activation_modules(model)
    collected: dict[str, list[Tensor]] = {name: [] for name, _ in layers}
    dims: dict[str, int] = {}
    handles = []
    for name, module in layers:
        def hook(_m, _inp, out, name=name):
            dims[name] = out.dim()
            collected[name].append(_per_unit(out).detach().to("cpu", torch.float64))
        handles.append(module.register_forward_hook(hook))
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        for i in range(0, len(x), batch):
            model(x[i : i + batch])
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            m.training = mode
    rows = []
    for index, (name, _) in enumerate(layers, start=1):
        if not collected[name]:  # never called in forward
            continue
        acts = torch.cat(collected[name]).numpy()
        rows.append({"index": index, "name": name, "kind": "conv" if dims[name] > 2 else "fc",
                     **correlation_stats(acts)})
    return {"computed": True, "images": int(len(x)), "mode": "eval", "method": METHOD, "layers": rows}


def not_computed(reason: str) -> dict:
    """The file content of a run without the proxy (coadapt false)."""
    return {"computed": False, "reason": reason, "layers": []}
