"""Numbers and sentences for the report's landscape section, from the two bands."""

from __future__ import annotations

import math

import pandas as pd


def _mean(series) -> float:
    values = pd.to_numeric(series, errors="coerce").astype(float)
    values = values[values.apply(math.isfinite)]
    return float(values.mean()) if len(values) else math.nan


def landscape_table(course: pd.DataFrame, probes: pd.DataFrame | None, group: str = "bn") -> pd.DataFrame:
    """Per BN setting: mean loss-band width across learning rates, mean course gradient change and
    its max (course beta), and, with probes, the mean probe loss band, gradient change and beta."""
    rows = []
    for g, c in course.groupby(group, sort=False):
        row = {group: g, "steps": int(c.step.max()),
               "course_loss_band": _mean(c.loss_max - c.loss_min),
               "course_grad_change": _mean(c.get("grad_change_median", pd.Series(dtype=float))),
               "course_beta_max": float(pd.to_numeric(c.get("beta", pd.Series(dtype=float))).max())}
        if probes is not None and not probes.empty:
            p = probes[probes[group] == g]
            row.update({"probed_steps": int(p.step.nunique()),
                        "probe_loss_band": _mean(p.loss_max - p.loss_min),
                        "probe_grad_change": _mean(p.grad_change_max),
                        "probe_beta": _mean(p.beta_max)})
        rows.append(row)
    return pd.DataFrame(rows)


def landscape_findings(table: pd.DataFrame, group: str = "bn", baseline: str = "none") -> list[str]:
    """Compare each BN setting with the baseline on every column the table has."""
    base = table[table[group].astype(str) == baseline]
    if base.empty:
        return []
    b = base.iloc[0]
    texts = {
        "course_loss_band": "the loss band across learning rates (course method) was on average",
        "course_grad_change": "the last layer's gradient change between steps (course gradient predictiveness) was on average",
        "probe_loss_band": "the loss band over step sizes along the gradient (Santurkar probes) was on average",
        "probe_grad_change": "the largest gradient change along the gradient (Santurkar probes) was on average",
        "probe_beta": "the effective beta-smoothness (Santurkar probes) was on average",
    }
    sentences = []
    for _, r in table[table[group].astype(str) != baseline].iterrows():
        for column, text in texts.items():
            if column not in table.columns or not (math.isfinite(r[column]) and math.isfinite(b[column])):
                continue
            if b[column] == 0:
                continue
            ratio = r[column] / b[column]
            word = "smaller" if ratio < 1 else "larger"
            factor = 1 / ratio if ratio < 1 else ratio
            sentences.append(f"With {group}={r[group]}, {text} {factor:.2f}x {word} than without BN "
                             f"({r[column]:.3g} vs {b[column]:.3g}).")
    return sentences
