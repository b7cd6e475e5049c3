"""Sentences stating a study's results, generated from its summary table.

Nothing here states a number the data did not produce: every sentence is
built from the summary rows it is given.
"""

from __future__ import annotations

import math

import pandas as pd


def _pct(x) -> str:
    return f"{100 * x:.1f}%"


def _present(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def _with_sd(mean, sd) -> str:
    return _pct(mean) + (f" ± {100 * sd:.1f}" if _present(sd) else "")


def generic_findings(summary: pd.DataFrame, metric: str = "best_val_acc") -> list[str]:
    """Best and worst cell by mean `metric`, their gap, and the diverged cells."""
    sentences: list[str] = []
    ranked = summary[summary[f"{metric}_mean"].apply(_present)].sort_values(f"{metric}_mean", ascending=False)
    if len(ranked):
        best = ranked.iloc[0]
        n_ok = int(best["n"] - best["n_diverged"])
        sentences.append(
            f"Highest best validation accuracy: {best['label']} with {_with_sd(best[f'{metric}_mean'], best[f'{metric}_sd'])}"
            f" (mean over {n_ok} seed{'s' if n_ok != 1 else ''}), test accuracy {_pct(best['test_acc_mean'])}."
        )
    if len(ranked) > 1:
        worst = ranked.iloc[-1]
        gap = ranked.iloc[0][f"{metric}_mean"] - worst[f"{metric}_mean"]
        sentences.append(
            f"Lowest: {worst['label']} with {_pct(worst[f'{metric}_mean'])}, "
            f"{100 * gap:.1f} percentage points below the best."
        )
    diverged = summary[summary["n_diverged"] > 0]
    for _, row in diverged.iterrows():
        sentences.append(f"{row['label']} diverged in {row['diverged']} runs (non-finite training loss).")
    if diverged.empty:
        sentences.append("No run diverged.")
    return sentences


def bn_comparison_findings(summary: pd.DataFrame, axes: list[str], baseline: str = "none",
                           metric: str = "best_val_acc", min_gap: float = 0.005) -> list[str]:
    """Per setting (the non-BN axes), BN vs no BN on mean `metric`, largest gaps first.

    Settings where the two differ by less than `min_gap` are summarised in one
    sentence rather than listed, so the findings stay readable.
    """
    if "bn" not in axes:
        return []
    others = [a for a in axes if a != "bn"]
    frame = summary.copy()
    frame["setting"] = frame.apply(
        lambda r: ", ".join(f"{a}={r[a]}" for a in others if str(r[a]) != "na") or "all runs", axis=1)
    rows = []
    for setting, group in frame.groupby("setting", sort=False):
        base = group[group.bn.astype(str) == baseline]
        if base.empty:
            continue
        b = base.iloc[0]
        for _, r in group[group.bn.astype(str) != baseline].iterrows():
            if not (_present(r[f"{metric}_mean"]) and _present(b[f"{metric}_mean"])):
                continue
            rows.append((setting, r["bn"], r[f"{metric}_mean"], b[f"{metric}_mean"]))
    if not rows:
        return []
    rows.sort(key=lambda t: -abs(t[2] - t[3]))
    sentences, small = [], 0
    for setting, bn, with_bn, without in rows:
        gap = with_bn - without
        if abs(gap) < min_gap:
            small += 1
            continue
        sentences.append(
            f"{setting}: bn={bn} {'raised' if gap > 0 else 'lowered'} the best validation accuracy from "
            f"{_pct(without)} to {_pct(with_bn)} ({100 * gap:+.1f} points)."
        )
    if small:
        sentences.append(f"In {small} other setting{'s' if small > 1 else ''} BN changed the best validation "
                         f"accuracy by less than {100 * min_gap:.1f} points.")
    return sentences
