"""Landscape figures, BN vs no-BN on shared axes: the course's bands across learning rates and Santurkar's probes.

Both figures: the loss band on a full-width panel, then gradient change (log
y) and beta-smoothness (log y) side by side; each title names its method.

    plot_course_band(course_band(runs), "course_band.png", title="VGG-A", dataset_note="Fashion-MNIST", lrs=LRS)
    plot_probe_bands(probe_band(probes), "probes.png", title="VGG-A", dataset_note="Fashion-MNIST, SGD lr 0.1")
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bnlab.figures.style import FULL_WIDTH_IN, apply_style, palette, plt

BAND_ALPHA = 0.3
TITLE_CHARS = 100  # a 9 pt line at FULL_WIDTH_IN



def smooth(band: pd.DataFrame, window: int, *, group: str = "bn", cols: Sequence[str] | None = None) -> pd.DataFrame:
    """Display copy: centred rolling mean over `window` rows per group (min_periods 1); the input is unchanged.

    cols defaults to every float column except epoch.
    """
    out = band.copy()
    if window is None or window <= 1:
        return out
    if cols is None:
        cols = [c for c in out.columns if c not in (group, "step", "epoch") and pd.api.types.is_float_dtype(out[c])]
    out = out.sort_values([group, "step"], kind="stable") if group in out.columns else out.sort_values("step")
    grouped = out.groupby(group, sort=False) if group in out.columns else [(None, out)]
    for _, d in grouped:
        out.loc[d.index, list(cols)] = d[list(cols)].rolling(window, center=True, min_periods=1).mean().to_numpy()
    return out.sort_index()

def _suptitle(fig, *parts: str) -> None:
    """Title lines wrapped to the figure width, so bbox_inches="tight" never widens the figure."""
    lines = [line for part in parts for line in textwrap.wrap(part, TITLE_CHARS)]
    fig.suptitle("\n".join(lines), fontsize=9)


def bn_text(bn) -> str:
    """Legend text of a BN placement: "none" reads as "no BN"."""
    return "no BN" if str(bn) == "none" else f"BN ({bn})"


def _colors(groups: Sequence) -> dict:
    # no BN first colour (blue), BN second (orange), whatever the order in the data
    ordered = sorted(groups, key=lambda g: str(g) != "none")
    return dict(zip(ordered, palette(max(2, len(ordered)))))


def _layout(with_lower: bool):
    apply_style()
    if not with_lower:
        fig, ax = plt.subplots(figsize=(FULL_WIDTH_IN, 2.9), layout="constrained")
        return fig, ax, None, None
    fig = plt.figure(figsize=(FULL_WIDTH_IN, 5.6), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=[1.15, 1])
    top = fig.add_subplot(grid[0, :])
    return fig, top, fig.add_subplot(grid[1, 0], sharex=top), fig.add_subplot(grid[1, 1], sharex=top)


def _band(ax, d: pd.DataFrame, lo: str, hi: str, color, label: str | None) -> None:
    d = d.dropna(subset=[lo, hi])
    if d.empty:
        return
    ax.fill_between(d.step, d[lo], d[hi], color=color, alpha=BAND_ALPHA, lw=0, label=label)
    ax.plot(d.step, d[lo], color=color, lw=0.6)
    ax.plot(d.step, d[hi], color=color, lw=0.6)


def _fmt_lr(lr) -> str:
    return f"{float(lr):g}"


def plot_course_band(band: pd.DataFrame, out_path: str, *, title: str, dataset_note: str, lrs: Sequence[float],
                     group: str = "bn", smooth_window: int | None = None) -> None:
    """Course method figure from course_band(): loss band, gradient predictiveness band, beta-smoothness.

    Band = min..max across the learning-rate runs at each step. A run that
    stopped early (diverged) is marked with a dotted line at its last finite
    step. smooth_window: rolling mean over that many steps, for display only
    (said in the title).
    """
    shown = smooth(band, smooth_window, group=group) if smooth_window and smooth_window > 1 else band
    groups = list(dict.fromkeys(band[group]))
    colors = _colors(groups)
    has_grad = "grad_change_max" in band.columns and band["grad_change_max"].notna().any()
    fig, ax_loss, ax_grad, ax_beta = _layout(has_grad)
    for g in groups:
        d = shown[shown[group] == g].sort_values("step")
        _band(ax_loss, d, "loss_min", "loss_max", colors[g], bn_text(g))
        if has_grad:
            _band(ax_grad, d, "grad_change_min", "grad_change_max", colors[g], bn_text(g))
            b = d.dropna(subset=["beta"])
            ax_beta.plot(b.step, b.beta, color=colors[g], lw=0.9, label=bn_text(g))
    run_col = band.attrs.get("run", "run_lr")
    for end in band.attrs.get("ends", []):
        if end.get("stopped_early"):
            what = "diverged" if end.get("diverged") else "ended"
            ax_loss.axvline(end["last_step"], color=colors.get(end[group], "k"), ls=":", lw=1.2,
                            label=f"{bn_text(end[group])}, lr {_fmt_lr(end[run_col])}: {what} after step "
                                  f"{end['last_step']}")
    ax_loss.set_ylabel("training loss")
    ax_loss.set_title("(a) loss landscape: max..min of the training loss across learning rates, per step")
    ax_loss.legend(frameon=False, ncols=2)
    if has_grad:
        ax_grad.set_yscale("log")
        ax_grad.set_ylabel(r"$\|g_t - g_{t-1}\|_2$ (last layer)")
        ax_grad.set_title("(b) gradient predictiveness: band across lrs")
        ax_beta.set_yscale("log")
        ax_beta.set_ylabel(r"max over lrs of $\|g_t - g_{t-1}\|_2$")
        ax_beta.set_title('(c) "effective" beta-smoothness')
        ax_beta.legend(frameon=False)
        for ax in (ax_grad, ax_beta):
            ax.set_xlabel("training step")
    else:
        ax_loss.set_xlabel("training step")
    lr_text = ", ".join(_fmt_lr(lr) for lr in lrs)
    smoothed = bool(smooth_window and smooth_window > 1)
    smooth_text = f"; rolling mean over {smooth_window} steps for display" if smoothed else ""
    _suptitle(fig, f"{title}: course method (seed 004): band across learning rates {{{lr_text}}}, BN vs no BN",
              f"{dataset_note}; one model per lr; band = min..max over the lrs at each step{smooth_text}")
    fig.savefig(out_path)
    plt.close(fig)


def probe_every(probe_band: pd.DataFrame, group: str = "bn") -> int | None:
    """The probing interval k: the most common step difference within a group (None with < 2 probed steps)."""
    diffs = [np.diff(np.sort(d.step.unique())) for _, d in probe_band.groupby(group)]
    diffs = np.concatenate(diffs) if diffs else np.array([])
    if len(diffs) == 0:
        return None
    vals, counts = np.unique(diffs, return_counts=True)
    return int(vals[np.argmax(counts)])


def plot_probe_bands(probe_band: pd.DataFrame, out_path: str, *, title: str, dataset_note: str,
                     group: str = "bn", smooth_window: int | None = None) -> None:
    """Santurkar et al. figure from probe_band(): loss band over eta, gradient change band, effective beta-smoothness.

    At every probed step t with gradient g: L(w - eta lr g) and
    ||grad L(w) - grad L(w - eta lr g)|| for the etas, band = min..max over eta;
    beta = max over eta of that change over ||eta lr g||.
    """
    shown = smooth(probe_band, smooth_window, group=group) if smooth_window and smooth_window > 1 else probe_band
    groups = list(dict.fromkeys(probe_band[group]))
    colors = _colors(groups)
    fig, ax_loss, ax_grad, ax_beta = _layout(True)
    for g in groups:
        d = shown[shown[group] == g].sort_values("step")
        _band(ax_loss, d, "loss_min", "loss_max", colors[g], bn_text(g))
        _band(ax_grad, d, "grad_change_min", "grad_change_max", colors[g], bn_text(g))
        b = d.dropna(subset=["beta_max"])
        ax_beta.plot(b.step, b.beta_max, color=colors[g], lw=0.9, label=bn_text(g))
    ax_loss.set_ylabel(r"loss $L(w - \eta\,\mathrm{lr}\,g)$")
    ax_loss.set_title("(a) loss landscape: band over step sizes along the gradient")
    ax_loss.legend(frameon=False)
    ax_grad.set_yscale("log")
    ax_grad.set_ylabel(r"$\|\nabla L(w) - \nabla L(w - \eta\,\mathrm{lr}\,g)\|_2$")
    ax_grad.set_title("(b) gradient predictiveness: band over step sizes")
    ax_beta.set_yscale("log")
    ax_beta.set_ylabel(r"max$_\eta$ gradient change / $\|\eta\,\mathrm{lr}\,g\|_2$")
    ax_beta.set_title('(c) "effective" beta-smoothness')
    ax_beta.legend(frameon=False)
    for ax in (ax_grad, ax_beta):
        ax.set_xlabel("training step")
    k = probe_every(probe_band, group)
    every = f"every k-th step (k = {k})" if k else "every k-th step"
    eta_text = ""
    if {"eta_min", "eta_max", "n_etas"} <= set(probe_band.columns) and len(probe_band):
        eta_text = (f"; eta in [{probe_band.eta_min.min():g}, {probe_band.eta_max.max():g}] x lr "
                    f"({int(probe_band.n_etas.max())} values)")
    smoothed = bool(smooth_window and smooth_window > 1)
    smooth_text = f"; rolling mean over {smooth_window} probes for display" if smoothed else ""
    _suptitle(fig, f"{title}: Santurkar et al. probes along the gradient, {every}, BN vs no BN",
              f"{dataset_note}{eta_text}; band = min..max over eta, same batch{smooth_text}")
    fig.savefig(out_path)
    plt.close(fig)
