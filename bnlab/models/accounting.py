"""Per-layer accounting of a real nn.Module: output shape, activations, weights and multiply-accumulates.

Nothing is typed in: a forward hook on every leaf module records the shape of
what it really produced on a batch-1 input of zeros, and the weights are read
off the module's own parameters. Build big models on the meta device
(`with torch.device("meta"): ...`) and the forward only propagates shapes.

Counting rules (per sample, i.e. for one input image):
- activations: numel of the layer's output (the memory the forward keeps);
  the input row counts the input image itself.
- weights: parameter values except those named ``bias``; BN's gamma counts as a
  weight and its beta as a bias. ``params`` = weights + biases.
- macs (multiply-accumulates): conv H_out*W_out*C_out*(C_in/groups)*kH*kW;
  linear in*out (times any extra leading dims); pooling, BN, LRN, activations
  and dropout count 0 (their comparisons / element-wise ops are not multiplies
  of a weight by an input). Bias additions are not counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd
from torch.nn.modules.pooling import (
    _AdaptiveAvgPoolNd,
    _AdaptiveMaxPoolNd,
    _AvgPoolNd,
    _LPPoolNd,
    _MaxPoolNd,
)

# Layers kept in the default table besides anything that holds parameters:
# those that change the spatial size or normalise.
SPATIAL_TYPES: tuple[type[nn.Module], ...] = (
    _ConvNd,
    nn.Linear,
    _MaxPoolNd,
    _AvgPoolNd,
    _AdaptiveAvgPoolNd,
    _AdaptiveMaxPoolNd,
    _LPPoolNd,
    _BatchNorm,
    nn.LocalResponseNorm,
)

COLUMNS = [
    "name", "type", "output_shape", "activations", "activations_expr",
    "weights", "biases", "params", "macs", "macs_expr", "calc",
]


def shape_text(shape: Sequence[int], sep: str = "*") -> str:
    """(C, H, W) -> 'H*W*C' (or 'HxWxC' with sep='x') as the seed writes sizes; (F,) -> 'F'."""
    shape = list(shape)
    if len(shape) == 3:
        c, h, w = shape
        shape = [h, w, c]
    return sep.join(str(d) for d in shape)


def _macs(module: nn.Module, inputs: tuple, out_shape: Sequence[int]) -> int:
    out_numel = math.prod(out_shape)
    if isinstance(module, _ConvNd):
        if module.transposed:
            # each input value meets C_out/groups * prod(kernel) weights
            in_numel = math.prod(inputs[0].shape[1:])
            return in_numel * (module.out_channels // module.groups) * math.prod(module.kernel_size)
        return out_numel * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        return out_numel * module.in_features
    return 0


def _macs_expr(module: nn.Module, out_shape: Sequence[int]) -> str:
    """'H*W*C_out * (kH*kW*C_in/groups)' for a conv, 'in*out' for a linear, '0' otherwise."""
    if isinstance(module, _ConvNd) and not module.transposed:
        kernel = "*".join(str(k) for k in module.kernel_size)
        return f"{shape_text(out_shape)} * ({kernel}*{module.in_channels // module.groups})"
    if isinstance(module, nn.Linear):
        extra = math.prod(out_shape[:-1])
        return f"{module.in_features}*{module.out_features}" + (f" * {extra}" if extra != 1 else "")
    return "0"


def _calc(module: nn.Module, weights: int, biases: int) -> str:
    """The parameter count as the seed writes it, e.g. '(11*11*3)*96 + 96'."""
    if isinstance(module, _ConvNd):
        kernel = "*".join(str(k) for k in module.kernel_size)
        expr = f"({kernel}*{module.in_channels // module.groups})*{module.out_channels}"
    elif isinstance(module, nn.Linear):
        expr = f"{module.in_features}*{module.out_features}"
    elif isinstance(module, _BatchNorm) and weights:
        expr = f"{module.num_features} (gamma)"
        return expr + (f" + {biases} (beta)" if biases else "")
    elif weights:
        expr = str(weights)
    else:
        return "0" if not biases else str(biases)
    return expr + (f" + {biases}" if biases else "")


def _device_of(model: nn.Module) -> torch.device:
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def layer_table(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    include_all: bool = False,
    include_input: bool = True,
) -> pd.DataFrame:
    """One row per layer the input passes through, in forward order.

    Rows are leaf modules (and any module holding parameters of its own) that
    hold weights or have a spatial / normalising effect (conv, linear, pool,
    BN, LRN); include_all=True also lists activations, dropout, flatten, ...
    with 0 weights. A first 'input' row (include_input) holds the input's own
    activations. Columns: name, type, output_shape (tuple: (C, H, W) or
    (features,)), activations, activations_expr ('224*224*64'), weights (no
    biases), biases, params (weights + biases), macs, calc ('(3*3*3)*64 + 64').

    Runs a batch of one zero image on the model's device (meta: shapes only),
    in eval mode and without gradients; the model's train/eval flags are restored.
    A module called twice gets two rows, its parameters counted on the first.
    """
    input_shape = tuple(int(d) for d in input_shape)
    rows: list[dict] = []
    seen_params: set[int] = set()
    hooked = [
        (name, m) for name, m in model.named_modules()
        if not list(m.children()) or any(True for _ in m.parameters(recurse=False))
    ]

    def hook(name: str):
        def record(module: nn.Module, inputs: tuple, output) -> None:
            if not isinstance(output, torch.Tensor):
                return
            shape = tuple(output.shape[1:])
            weights = biases = 0
            for pname, p in module.named_parameters(recurse=False):
                if id(p) in seen_params:
                    continue
                seen_params.add(id(p))
                if pname == "bias":
                    biases += p.numel()
                else:
                    weights += p.numel()
            keep = include_all or weights or biases or isinstance(module, SPATIAL_TYPES)
            if not keep:
                return
            rows.append({
                "name": name,
                "type": type(module).__name__,
                "output_shape": shape,
                "activations": math.prod(shape),
                "activations_expr": shape_text(shape),
                "weights": weights,
                "biases": biases,
                "params": weights + biases,
                "macs": _macs(module, inputs, shape),
                "macs_expr": _macs_expr(module, shape),
                "calc": _calc(module, weights, biases),
            })
        return record

    flags = {m: m.training for m in model.modules()}
    handles = [m.register_forward_hook(hook(name)) for name, m in hooked]
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=_device_of(model)))
    finally:
        for h in handles:
            h.remove()
        for m, training in flags.items():
            m.training = training
    if include_input:
        rows.insert(0, {
            "name": "input", "type": "Input", "output_shape": input_shape,
            "activations": math.prod(input_shape), "activations_expr": shape_text(input_shape),
            "weights": 0, "biases": 0, "params": 0, "macs": 0, "macs_expr": "0", "calc": "0",
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def totals(df: pd.DataFrame) -> dict:
    """Sums of a layer_table: weights (no biases), biases, params (with biases), activations, macs, layers.

    activations includes the input row when the table has one; 'layers'
    counts the rows that hold weights.
    """
    return {
        "weights": int(df["weights"].sum()),
        "biases": int(df["biases"].sum()),
        "params": int(df["params"].sum()),
        "activations": int(df["activations"].sum()),
        "macs": int(df["macs"].sum()),
        "layers": int((df["weights"] > 0).sum()),
    }
