"""Number formats shared by the analyses' tables (empty text for a missing value)."""

from __future__ import annotations

import math


def missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def fmt_pct(x) -> str:
    """A fraction as percent with one decimal: 0.8765 -> '87.7'."""
    return "" if missing(x) else f"{100 * x:.1f}"


def fmt_num(x, digits: int = 3) -> str:
    return "" if missing(x) else f"{x:.{digits}g}"


def fmt_loss(x) -> str:
    return "" if missing(x) else f"{x:.3f}"


# Containers of bnlab's models (layers.assemble) and the module names inside a block (layers.py).
_CONTAINERS = ("stem", "features", "head")
_IN_BLOCK = ("conv", "linear", "act", "bn")


def short_layer(name: str) -> str:
    """A module name as a reader knows the layer: 'features.conv2.conv' -> 'conv2', 'head.fc1.act' -> 'fc1',
    'head.out.linear' -> 'out', 'features.inc1.conv3x3.act' -> 'inc1.conv3x3'."""
    parts = str(name).split(".")
    if len(parts) > 1 and parts[0] in _CONTAINERS:
        parts = parts[1:]
    if len(parts) > 1 and parts[-1] in _IN_BLOCK:
        parts = parts[:-1]
    return ".".join(parts) or str(name)
