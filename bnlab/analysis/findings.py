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
