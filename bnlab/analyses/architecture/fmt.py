"""Number formatting for the architecture tables: thousands separators and the seed's "3.2M" short form."""

from __future__ import annotations

import math


def thousands(n: int | float) -> str:
    """12345678 -> '12,345,678' (floats keep up to 2 decimals)."""
    if isinstance(n, float) and not n.is_integer():
        return f"{n:,.2f}"
    return f"{int(n):,}"


def short(n: int) -> str:
    """The seed's short form: 2 significant figures with K / M / G, plain below 10,000.

    150,528 -> '150K', 3,211,264 -> '3.2M', 802,816 -> '800K', 401,408 -> '400K', 4,096 -> '4096'.
    """
    n = int(n)
    if abs(n) < 10_000:
        return str(n)
    digits = int(math.floor(math.log10(abs(n))))
    rounded = round(n, 1 - digits)  # 2 significant figures
    for unit, suffix in ((10**9, "G"), (10**6, "M"), (10**3, "K")):
        if abs(rounded) >= unit:
            value = rounded / unit
            text = f"{value:.1f}".rstrip("0").rstrip(".") if value < 10 else f"{value:.0f}"
            return text + suffix
    return str(rounded)
