"""Receptive field of N stacked FxF convolutions (stride 1): by formula and by a gradient probe."""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn


def receptive_field_formula(n: int, f: int) -> int:
    """Side of the receptive field of n stacked f x f stride-1 convs: each adds f - 1, so 1 + n(f - 1) = nf - n + 1."""
    if n < 1 or f < 1:
        raise ValueError(f"need n >= 1 and f >= 1, got n={n}, f={f}")
    return n * f - n + 1


def receptive_field_probe(n: int, f: int) -> int:
    """Measure the receptive field on a real stack of n Conv2d(1, 1, f) (stride 1, no padding, no bias).

    Weights are all 1 (positive, so no contributions can cancel). The input is
    larger than the field on every side; one central output is backpropagated
    and the side of the square of nonzero input gradients is returned (the
    region is checked to be a full, centred square). float64 on the CPU.
    """
    if n < 1 or f < 1:
        raise ValueError(f"need n >= 1 and f >= 1, got n={n}, f={f}")
    stack = nn.Sequential(*[nn.Conv2d(1, 1, f, bias=False) for _ in range(n)]).double()
    with torch.no_grad():
        for conv in stack:
            conv.weight.fill_(1.0)
    side = 2 * n * f + 1  # the field n(f-1)+1 plus a margin of n(f+1)/2 on each side
    x = torch.zeros(1, 1, side, side, dtype=torch.float64, requires_grad=True)
    y = stack(x)
    h, w = y.shape[-2:]
    y[0, 0, h // 2, w // 2].backward()
    nonzero = x.grad[0, 0] != 0
    rows = nonzero.any(dim=1).nonzero().flatten()
    cols = nonzero.any(dim=0).nonzero().flatten()
    height = int(rows[-1] - rows[0] + 1)
    width = int(cols[-1] - cols[0] + 1)
    if height != width or int(nonzero.sum()) != height * width:
        raise AssertionError(f"gradient region of n={n}, f={f} is not a full square: {height}x{width}")
    if rows[0] == 0 or rows[-1] == side - 1 or cols[0] == 0 or cols[-1] == side - 1:
        raise AssertionError(f"gradient region of n={n}, f={f} touches the input border; input too small")
    return height


def receptive_field_composed(model: nn.Module) -> int:
    """Side of the receptive field of a chain of convs and pools, composed from the modules' own geometry.

    Walks the modules in definition order; every module with a kernel_size
    (conv, pooling) widens the field by (k - 1) * dilation * jump, where jump is
    the product of the strides below it (the input-pixel distance between
    neighbouring positions of its input): r = 1 + sum_l (k_l - 1) d_l prod_{m<l} s_m.
    For n stacked f x f stride-1 convs this is 1 + n(f - 1), the formula.
    """
    side, jump = 1, 1
    for module in model.modules():
        if not hasattr(module, "kernel_size") or not hasattr(module, "stride"):
            continue
        pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
        k, s = pair(module.kernel_size)[0], pair(module.stride)[0]
        d = pair(getattr(module, "dilation", 1))[0]
        side += (k - 1) * d * jump
        jump *= s
    return side


def receptive_field_table(ns=(1, 2, 3, 4), fs=(3, 5, 7)) -> pd.DataFrame:
    """Columns n, f, formula, probe, match for every (n, f)."""
    rows = []
    for f in fs:
        for n in ns:
            formula, probe = receptive_field_formula(n, f), receptive_field_probe(n, f)
            rows.append({"n": n, "f": f, "formula": formula, "probe": probe, "match": formula == probe})
    return pd.DataFrame(rows)
