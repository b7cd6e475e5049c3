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
