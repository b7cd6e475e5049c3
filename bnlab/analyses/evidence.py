"""Evidence shared by the analyses that judge: cells picked by parameters, seeds paired, intervals, verdicts.

Machinery, not an analysis. The comparisons, expectations and speedup analyses
use it, so "A beats B" means the same thing in all three: the difference is
taken per seed (seed s of A against seed s of B, same data order and initial
draw where the cells allow), and its 95% interval is the paired Student t
interval of the mean difference, mean +- t(n-1) s / sqrt(n), which keeps its
coverage at small n when the differences are roughly normal (a bootstrap does
not: with two seeds it is the range of the two). Fewer than MIN_SEEDS paired
seeds give no interval and no direction: two seeds are said to agree or
disagree, and an undecided verdict says how many seeds would decide it at the
spread observed.

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
MIN_SEEDS = 3  # fewest paired seeds an interval or a direction is drawn from
MAX_SEEDS_NEEDED = 100  # beyond this, "more seeds" is no advice: the effect is too small for its spread
INTERVAL_METHOD = "paired t-interval over seeds (Student's t, n - 1 degrees of freedom)"
CONFIRMED, CONTRADICTED, INCONCLUSIVE = "confirmed", "contradicted", "inconclusive"


CHANCE_TOLERANCE = 0.05  # a finished run at most 1/classes + this is "at chance": it did not train


def chance_limit(dataset: str, tolerance: float = CHANCE_TOLERANCE) -> float:
    """The accuracy at or below which a finished run of `dataset` is at chance (1/classes + tolerance)."""
    from bnlab.data.catalog import NUM_CLASSES

    return 1.0 / NUM_CLASSES.get(dataset, 10) + tolerance


# Finished training, the rule a verdict on final numbers needs: a run whose validation accuracy (its
# curve subset) still rose by more than STILL_RISING per epoch over its last TAIL_POINTS curve points
# (least-squares slope) was still training when it stopped, and its final numbers are a snapshot.
STILL_RISING = 0.005  # 0.5 accuracy points per epoch
TAIL_POINTS = 3


def end_slope(curve, k: int = TAIL_POINTS) -> float:
    """Least-squares slope of acc against epoch over the last k points of a curve (columns epoch, acc, in
    order); NaN with fewer than 2 points or epochs."""
    tail = curve.tail(k)
    if len(tail) < 2 or tail.epoch.nunique() < 2:
        return math.nan
    return float(np.polyfit(tail.epoch.astype(float), tail.acc.astype(float), 1)[0])


def still_training(curve) -> bool:
    """The rule above, for one run's validation curve."""
    slope = end_slope(curve)
    return finite(slope) and slope > STILL_RISING


def still_training_runs(rows, curves) -> list[str]:
    """The finished runs among run-table `rows` (label, seed, status) still training by the rule, in words
    ('bn=none seed 1: +2.10 points/epoch at epoch 3'), from the summary's curves (label, seed, split, step,
    epoch, acc); none where no curves were recorded."""
    if curves is None or len(curves) == 0:
        return []
    out = []
    for r in rows.itertuples():
        if r.status != "ok":
            continue
        curve = curves[(curves.label == r.label) & (curves.seed == r.seed) & (curves.split == "val")]
        curve = curve.sort_values("step")
        if still_training(curve):
            out.append(f"{r.label} seed {r.seed}: {100 * end_slope(curve):+.2f} points/epoch at epoch "
                       f"{float(curve.epoch.iloc[-1]):g}")
    return list(dict.fromkeys(out))


def still_training_words(rising: list[str]) -> str:
    """'2 runs rose faster than 0.5 points per epoch over their last 3 validation points (...)'."""
    shown = "; ".join(rising[:3]) + (f"; and {len(rising) - 3} more" if len(rising) > 3 else "")
    return (f"{len(rising)} run{'s' if len(rising) != 1 else ''} rose faster than {100 * STILL_RISING:g} points "
            f"per epoch over their last {TAIL_POINTS} validation points ({shown})")


def binomial_se(p: float, n: int) -> float:
    """Binomial standard error of an accuracy p measured on n images: the noise of one run's accuracy."""
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n > 0 else math.nan


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


def _sample_sd(v: np.ndarray) -> float:
    """The sample standard deviation, exactly 0 for equal values: their float mean can be an ulp off them
    and std() then a few ulps above 0, which printed an interval like [+1.69, +1.69] for three seeds with
    the same speedup."""
    return float(v.std(ddof=1)) if np.ptp(v) > 0 else 0.0


def t_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Student t interval of the mean of `values` (paired differences, or log ratios); None below MIN_SEEDS.

    Zero width when every value is the same: callers say "the same in every seed" rather than print it."""
    from scipy import stats

    v = np.asarray(list(values), float)
    if len(v) < MIN_SEEDS:
        return None
    m, half = float(v.mean()), 0.0
    s = _sample_sd(v)
    if s > 0:
        half = float(stats.t.ppf(0.5 + confidence / 2, len(v) - 1)) * s / math.sqrt(len(v))
    return m - half, m + half


def seeds_to_decide(values, gap: float, confidence: float = CONFIDENCE) -> int | None:
    """Fewest paired seeds whose t interval, at the spread of `values`, is narrower on each side than `gap`
    (the distance from the mean to the margin it must clear): None when the gap is nil, when fewer than two
    values give no spread, or beyond MAX_SEEDS_NEEDED."""
    from scipy import stats

    v = np.asarray(list(values), float)
    if len(v) < 2 or not gap > 0:
        return None
    s = _sample_sd(v)
    for n in range(MIN_SEEDS, MAX_SEEDS_NEEDED + 1):
        if float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * s / math.sqrt(n) < gap:
            return n
    return None


def what_would_decide(values, gap: float) -> str:
    """'about 7 paired seeds at this spread would decide it', or why no number of seeds would."""
    n = seeds_to_decide(values, gap)
    if len(values) < 2:
        return f"at least {MIN_SEEDS} paired seeds would show its spread"
    if n is not None:
        return f"about {n} paired seeds at this spread would decide it"
    if not gap > 0:
        return "the mean sits on the margin: more seeds at this spread would not decide it"
    return f"more than {MAX_SEEDS_NEEDED} paired seeds at this spread would be needed: the effect is small for it"


def where_decided(study) -> str:
    """For a paired claim the study's seeds cannot decide: which scale of it can, in words."""
    here = len(study.seeds)
    if here >= MIN_SEEDS:
        return ""
    per = f"{here} seed{'s' if here != 1 else ''} per cell"
    if not study.scale:
        return f"this study runs {per}: give it {MIN_SEEDS} or more to decide it"
    able = [f"the {name} scale ({n} seeds)" for name, n in study.seeds_at_scales.items()
            if n >= MIN_SEEDS and name != study.scale]
    if able:
        return f"the {study.scale} scale runs {per}; {' and '.join(able)} decides it"
    return f"no scale of this study runs {MIN_SEEDS} seeds per cell (here {here}): undecided as configured"


def signs_agree(d: np.ndarray) -> bool:
    """Every paired difference on the same side of 0 (what two seeds can say without an interval)."""
    return bool((d > 0).all() or (d < 0).all())


def few_seeds_words(d: np.ndarray, fmt) -> str:
    """One or two paired differences in words, without an interval: '2 seeds, differences +0.3 and +0.5:
    they agree in sign' / 'one seed, difference +0.3'."""
    if len(d) == 1:
        return f"one seed, difference {fmt(float(d[0]))}"
    shown = " and ".join(fmt(float(x)) for x in d)
    agree = "they agree in sign" if signs_agree(d) else "they disagree in sign"
    return f"{len(d)} seeds, differences {shown}: {agree}"


def interval_words(d: np.ndarray, interval: tuple[float, float], fmt) -> str:
    """'5 seeds, mean difference +0.4, 95% interval [+0.1, +0.7]', or, when every seed gave the same
    difference, 'the same difference +0.4 in all 5 seeds' (a zero-width interval is not an interval)."""
    m = float(d.mean())
    lo, hi = interval
    if hi - lo == 0:
        return f"the same difference {fmt(m)} in all {len(d)} seeds"
    return f"{len(d)} seeds, mean difference {fmt(m)}, {round(100 * CONFIDENCE)}% interval [{fmt(lo)}, {fmt(hi)}]"


def judge_difference(p: Paired, *, direction: int, margin: float,
                     fmt=lambda x: f"{x:+.3g}") -> tuple[str, str]:
    """Verdict on "a - b beyond `margin` in `direction`" (+1 higher, -1 lower) and the reason in words.

    At least MIN_SEEDS paired seeds: confirmed when the whole t interval lies
    beyond the margin, contradicted when it lies wholly on the other side,
    inconclusive when it straddles (and the reason says how many seeds would
    decide it). Fewer: inconclusive, the differences given and whether they agree.
    """
    if p.n == 0:
        return INCONCLUSIVE, "no seed with a finished run of both cells"
    d = direction * p.diffs  # "beyond the margin" is d > margin whichever the direction
    gap = abs(float(d.mean()) - margin)
    if p.n < MIN_SEEDS:
        return INCONCLUSIVE, (f"{few_seeds_words(p.diffs, fmt)}; no verdict from fewer than {MIN_SEEDS} "
                              f"paired seeds ({what_would_decide(d, gap)})")
    lo, hi = t_interval(d)
    shown = tuple(sorted((direction * lo, direction * hi)))
    where = interval_words(p.diffs, shown, fmt)
    if lo > margin:
        return CONFIRMED, f"{where}: beyond {margin:g}"
    if hi < margin:
        return CONTRADICTED, f"{where}: on the wrong side of {margin:g}"
    return INCONCLUSIVE, f"{where} includes {margin:g}; {what_would_decide(d, gap)}"


def judge_ratio(ratios, *, above: float = 1.0) -> tuple[str, str]:
    """Verdict on "the ratio is above `above`" from one positive ratio per paired seed (a speedup), on the log
    scale, as the speedup tables state a speedup: the geometric mean, and the t interval of the mean log ratio
    taken back to ratios; confirmed when that interval lies above `above`, contradicted when wholly below,
    inconclusive when it straddles or below MIN_SEEDS seeds."""
    r = np.asarray(list(ratios), float)
    if len(r) == 0:
        return INCONCLUSIVE, "no seed with a ratio to judge"
    logs, margin = np.log(r), math.log(above)

    def fmt(log_value: float) -> str:
        return f"{math.exp(log_value):.2f}x"

    gap = abs(float(logs.mean()) - margin)
    if len(r) < MIN_SEEDS:
        shown = " and ".join(fmt(float(x)) for x in logs)
        side = ("all above" if (logs > margin).all() else "all below" if (logs < margin).all()
                else "on both sides of")
        words = f"one seed, {shown}" if len(r) == 1 else f"{len(r)} seeds, {shown}: {side} {above:g}x"
        return INCONCLUSIVE, (f"{words}; no verdict from fewer than {MIN_SEEDS} paired seeds "
                              f"({what_would_decide(logs, gap)})")
    lo, hi = t_interval(logs)
    where = (f"the same {fmt(lo)} in all {len(r)} seeds" if hi - lo == 0 else
             f"{len(r)} seeds, geometric mean {fmt(float(logs.mean()))}, {round(100 * CONFIDENCE)}% interval "
             f"[{fmt(lo)}, {fmt(hi)}]")
    if lo > margin:
        return CONFIRMED, f"{where}: above {above:g}x"
    if hi < margin:
        return CONTRADICTED, f"{where}: below {above:g}x"
    return INCONCLUSIVE, f"{where} includes {above:g}x; {what_would_decide(logs, gap)}"


def judge_similar(p: Paired, *, tolerance: float, fmt=lambda x: f"{x:+.3g}") -> tuple[str, str]:
    """Verdict on "|a - b| within `tolerance`": confirmed when the t interval lies inside +-tolerance,
    contradicted when it lies wholly outside, inconclusive otherwise or below MIN_SEEDS paired seeds."""
    if p.n == 0:
        return INCONCLUSIVE, "no seed with a finished run of both cells"
    m = float(p.diffs.mean())
    gap = abs(abs(m) - tolerance)
    if p.n < MIN_SEEDS:
        return INCONCLUSIVE, (f"{few_seeds_words(p.diffs, fmt)}; no verdict from fewer than {MIN_SEEDS} "
                              f"paired seeds ({what_would_decide(p.diffs, gap)})")
    lo, hi = t_interval(p.diffs)
    where = interval_words(p.diffs, (lo, hi), fmt)
    if -tolerance <= lo and hi <= tolerance:
        return CONFIRMED, f"{where}: within ±{tolerance:g}"
    if lo > tolerance or hi < -tolerance:
        return CONTRADICTED, f"{where}: outside ±{tolerance:g}"
    return INCONCLUSIVE, f"{where} is not wholly inside or outside ±{tolerance:g}; {what_would_decide(p.diffs, gap)}"


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
