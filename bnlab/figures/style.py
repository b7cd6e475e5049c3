"""One look for every figure: sizes that stay readable when printed at A4 width."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on workers or clusters
import matplotlib.pyplot as plt  # noqa: E402

FULL_WIDTH_IN = 7.0  # text width of an A4 page with 2 cm margins
DPI = 200


def apply_style() -> None:
    plt.rcParams.update({
        "font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9, "legend.fontsize": 7.5,
        "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.grid": True, "grid.alpha": 0.3,
        "axes.spines.top": False, "axes.spines.right": False, "savefig.dpi": DPI,
        "savefig.bbox": "tight", "lines.linewidth": 1.4,
    })


def palette(n: int):
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def wrap(text: str, width: int = 60) -> str:
    """Break long legend and panel texts so a figure never grows wider than the page."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width=width, break_long_words=False)) or text
