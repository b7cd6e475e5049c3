"""Evidence shared by the analyses that judge: cells picked by parameters, seeds paired, intervals, verdicts.

Machinery, not an analysis. The comparisons and expectations analyses use it, so
"A beats B" means the same thing in both: the difference is taken per seed
(seed s of A against seed s of B, same data order and initial draw where the
cells allow), and its 95% interval is a percentile bootstrap of the mean
paired difference. With two seeds that interval is simply [min d, max d]; with
one seed there is no spread, and a verdict says so instead of pretending.

Analyses publish numbers other analyses can judge in their fragment's
stats["measures"]: {name: [{"params": {param: text}, "seed": int | None,
"value": float}]}, `params` being the run's canonical parameters (or those
its value is common to, e.g. one bn setting over several lrs) and `seed`
None for a value over seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 4000
CONFIRMED, CONTRADICTED, INCONCLUSIVE = "confirmed", "contradicted", "inconclusive"


def finite(x) -> bool:
    return x is not None and isinstance(x, (int, float, np.floating, np.integer)) and math.isfinite(float(x))


def matches(params: dict, partial: dict) -> bool:
    """Whether canonical params (text) agree with every key of a canonical partial selector."""
    return all(str(params.get(k)) == str(v) for k, v in partial.items())


def measure(params: dict, seed, value) -> dict:
    """One entry of stats["measures"][name] (see the module docstring)."""
    return {"params": {k: str(v) for k, v in params.items()}, "seed": None if seed is None else int(seed),
            "value": float(value) if finite(value) else None}


@dataclass(frozen=True)
class Paired:
    """Per-seed values of two cells on their common seeds, and the differences a - b."""

    seeds: tuple[int, ...]
    a: tuple[float, ...]
    b: tuple[float, ...]

    @property
    def diffs(self) -> np.ndarray:
        return np.asarray(self.a, float) - np.asarray(self.b, float)

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def mean_diff(self) -> float | None:
        return float(self.diffs.mean()) if self.n else None


def pair(a: dict, b: dict) -> Paired:
    """Pair {seed: value} maps on the seeds both have a finite value for, in seed order."""
    seeds = sorted(s for s in set(a) & set(b) if finite(a[s]) and finite(b[s]))
    return Paired(tuple(seeds), tuple(float(a[s]) for s in seeds), tuple(float(b[s]) for s in seeds))


def bootstrap_interval(diffs, confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                       seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of `diffs` (None for fewer than two values).

    Seeded, so the report is the same on every re-run. With two values every
    resample mean lies in [min, max], and the interval is that range.
    """
    d = np.asarray(list(diffs), float)
    if len(d) < 2:
        return None
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(means, [tail, 1 - tail])
    # resample means cannot leave [min, max]; clip float noise so 2 seeds read as that range
    return float(max(lo, d.min())), float(min(hi, d.max()))


def judge_difference(p: Paired, *, direction: int, margin: float, decisive: float,
                     fmt=lambda x: f"{x:+.3g}") -> tuple[str, str]:
    """Verdict on "a - b beyond `margin` in `direction`" (+1 higher, -1 lower) and the reason in words.

    Several seeds: confirmed when the whole interval lies beyond the margin,
    contradicted when it lies wholly on the other side, inconclusive when it
    straddles. One seed: the difference alone decides only when it exceeds
    `decisive` (a gap no seed-to-seed noise of these studies explains), else
    inconclusive.
    """
    if p.n == 0:
        return INCONCLUSIVE, "no seed with a finished run of both cells"
    d = direction * p.diffs
    m = float(d.mean())
    if p.n == 1:
        threshold = fmt(decisive).lstrip("+")  # in the metric's units ("3.0 points")
        if m > margin + decisive:
            return CONFIRMED, f"one seed, difference {fmt(direction * m)} is beyond the one-seed threshold {threshold}"
        if m < margin - decisive:
            return CONTRADICTED, (f"one seed, difference {fmt(direction * m)} goes the other way by more than "
                                  f"the one-seed threshold {threshold}")
        return INCONCLUSIVE, f"one seed: no spread to judge a difference of {fmt(direction * m)} by"
    lo, hi = bootstrap_interval(d)
    shown = sorted((direction * lo, direction * hi))
    where = f"{p.n} seeds, mean difference {fmt(direction * m)}, 95% interval [{fmt(shown[0])}, {fmt(shown[1])}]"
    if lo > margin:
        return CONFIRMED, f"{where} excludes {margin:g}"
    if hi < margin:
        return CONTRADICTED, f"{where} lies on the wrong side of {margin:g}"
    return INCONCLUSIVE, f"{where} includes {margin:g}"


def judge_similar(p: Paired, *, tolerance: float, fmt=lambda x: f"{x:+.3g}") -> tuple[str, str]:
    """Verdict on "|a - b| within `tolerance`": the interval (several seeds) or the one difference.

    Several seeds: confirmed when the interval lies inside ±tolerance,
    contradicted when it lies wholly outside, inconclusive otherwise. One seed
    is contradicted only beyond twice the tolerance, else inconclusive.
    """
    if p.n == 0:
        return INCONCLUSIVE, "no seed with a finished run of both cells"
    m = float(p.diffs.mean())
    if p.n == 1:
        if abs(m) > 2 * tolerance:
            return CONTRADICTED, f"one seed, difference {fmt(m)} is more than twice the tolerance {tolerance:g}"
        return INCONCLUSIVE, f"one seed: no spread to judge a difference of {fmt(m)} by"
    lo, hi = bootstrap_interval(p.diffs)
    where = f"{p.n} seeds, mean difference {fmt(m)}, 95% interval [{fmt(lo)}, {fmt(hi)}]"
    if -tolerance <= lo and hi <= tolerance:
        return CONFIRMED, f"{where} lies within ±{tolerance:g}"
    if lo > tolerance or hi < -tolerance:
        return CONTRADICTED, f"{where} lies outside ±{tolerance:g}"
    return INCONCLUSIVE, f"{where} is not wholly inside or outside ±{tolerance:g}"


def judge_all(flags: list[bool], *, what: str, none_what: str, unit: str = "run") -> tuple[str, str]:
    """Verdict on "every run (or value) has the property": all -> confirmed, none -> contradicted,
    some -> inconclusive."""
    n, k = len(flags), sum(bool(f) for f in flags)
    if n == 0:
        return INCONCLUSIVE, f"no {unit} to judge"
    if k == n:
        return CONFIRMED, f"{what} in {k}/{n} {unit}{'s' if n > 1 else ''}"
    if k == 0:
        return CONTRADICTED, f"{none_what} in {n}/{n} {unit}{'s' if n > 1 else ''}"
    return INCONCLUSIVE, f"{what} in {k}/{n} {unit}s only: {'the seeds' if unit == 'run' else 'they'} disagree"
