"""Learning-rate and batch-size policies of seed 003 problem 2, as pure functions of the iteration.

- clr: cyclical learning rates (Smith 2015), triangular / triangular2 / exp_range.
- range_test_lr, range_test_grid, pick_lr_bounds: the LR range test and a
  rule that reads lr_min and lr_max off its loss curve; chosen_bounds: the
  picks that 'pick-<study>' runs train with, from a study's picks table.
- step_decay: the lr-decay baseline for "increase the batch size instead".
- batch_size_schedule, accumulation: batch doubling at a fixed lr, and how
  a batch too large for memory is split into equal micro-batches.

Nothing here touches an optimizer: a training loop asks for the value at
iteration `it` and sets it, so a resumed run gets the same schedule by
construction (no scheduler state to checkpoint).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for the annotation: this module needs no pandas to run
    import pandas as pd

CLR_MODES = ("triangular", "triangular2", "exp_range")


# ---- cyclical learning rates ------------------------------------------------


def clr(it: int, base_lr: float, max_lr: float, step_size: int, mode: str = "triangular",
        gamma: float = 1.0) -> float:
    """Cyclical learning rate at iteration `it` (0-based), by the equations of Smith 2015, section 3.1.

    cycle = floor(1 + it / (2 step)); x = |it / step - 2 cycle + 1|;
    lr = base + (max - base) * max(0, 1 - x) * scale, with scale 1
    (triangular), 1 / 2^(cycle - 1) (triangular2: the amplitude halves every
    cycle) or gamma^it (exp_range: the amplitude decays exponentially with the
    iteration; the seed's "cyclical lr with exponential decay").

    lr = base_lr at it = 0, 2 step, 4 step, ... and peaks at it = step, 3 step, ...
    It equals torch.optim.lr_scheduler.CyclicLR(step_size_up=step_size) after
    `it` calls of .step().
    """
    if step_size <= 0:
        raise ValueError(f"step_size must be positive, got {step_size}")
    if it < 0:
        raise ValueError(f"iteration must be >= 0, got {it}")
    if mode == "triangular":
        scale_fn = lambda cycle: 1.0  # noqa: E731
    elif mode == "triangular2":
        scale_fn = lambda cycle: 1.0 / 2.0 ** (cycle - 1)  # noqa: E731
    elif mode == "exp_range":
        scale_fn = lambda cycle: gamma ** it  # noqa: E731  (per iteration, not per cycle)
    else:
        raise ValueError(f"unknown CLR mode {mode!r}; valid values: {', '.join(CLR_MODES)}")
    cycle = math.floor(1 + it / (2 * step_size))
    x = abs(it / step_size - 2 * cycle + 1)
    return base_lr + (max_lr - base_lr) * max(0.0, 1.0 - x) * scale_fn(cycle)


def step_decay(it: int, base_lr: float, drop: float, every: int) -> float:
    """base_lr / drop^(it // every): the lr divided by `drop` every `every` iterations.

    The baseline against which batch growth is compared: Smith et al. 2017
    show that multiplying the batch by `drop` at those iterations instead gives
    the same noise scale (lr / batch) and similar test accuracy.
    """
    if every <= 0 or drop <= 0:
        raise ValueError(f"every and drop must be positive, got every={every}, drop={drop}")
    if it < 0:
        raise ValueError(f"iteration must be >= 0, got {it}")
    return base_lr / drop ** (it // every)


# ---- LR range test ----------------------------------------------------------


def range_test_lr(it: int, total_its: int, lr_start: float = 1e-9, lr_end: float = 10.0) -> float:
    """lr of a range-test sweep: exponential from lr_start (it = 0) to lr_end (it = total_its - 1).

    Exponential because the interesting region spans many decades: equal
    numbers of iterations per decade. The endpoints are returned exactly (no
    exp/log round-off) so a plot's axis limits and the grid are the round numbers.
    """
    if total_its < 2:
        raise ValueError(f"total_its must be >= 2, got {total_its}")
    if not 0 <= it < total_its:
        raise ValueError(f"iteration {it} outside the sweep [0, {total_its - 1}]")
    if not 0 < lr_start < lr_end:
        raise ValueError(f"need 0 < lr_start < lr_end, got {lr_start}, {lr_end}")
    if it == 0:
        return float(lr_start)
    if it == total_its - 1:
        return float(lr_end)
    frac = it / (total_its - 1)
    return lr_start * (lr_end / lr_start) ** frac


def range_test_grid(n: int = 10, lr_start: float = 1e-9, lr_end: float = 10.0) -> list[float]:
    """The seed's candidate lrs: n log-spaced values from lr_start to lr_end inclusive.

    With the defaults, 10 values 10^(10/9) ~ 12.9x apart: 1e-9, 1.29e-8, ..., 0.774, 10.
    Each is trained for a few epochs from the same initialisation; the
    final training losses give the coarse range-test curve.
    """
    return [range_test_lr(i, n, lr_start, lr_end) for i in range(n)]


def ema_smooth(values: Sequence[float], beta: float) -> list[float]:
    """Bias-corrected exponential moving average: s_i = EMA_i / (1 - beta^(i+1)).

    The correction removes the pull towards 0 of an average started at 0, so
    s_0 = values[0]; beta = 0 returns the values unchanged.
    """
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"smoothing factor must be in [0, 1), got {beta}")
    out, avg = [], 0.0
    for i, v in enumerate(values):
        avg = beta * avg + (1.0 - beta) * v
        out.append(avg / (1.0 - beta ** (i + 1)))
    return out


def auto_smoothing(n: int) -> float:
    """EMA factor for an n-point curve: span n / 50 points, so no smoothing below 100 points.

    A fixed beta (e.g. fast.ai's 0.98, a ~100-point window) would blur a
    short sweep and shift its minimum to the right by its lag; scaling the
    window with the length keeps the lag at ~2% of the sweep. The 10-point
    grid (one loss per lr, each already an average over epochs) is not smoothed.
    """
    span = n // 50
    return 0.0 if span < 2 else 1.0 - 2.0 / (span + 1)


def ema_window(beta: float) -> int:
    """Number of points an EMA of factor beta averages over, (1 + beta) / (1 - beta); 1 for beta = 0."""
    return max(1, round((1.0 + beta) / (1.0 - beta)))


def pick_lr_bounds(
    lrs: Sequence[float],
    losses: Sequence[float],
    *,
    smooth: float | None = None,
    safety: float = 3.0,
    fall_frac: float = 0.1,
    blowup: float = 4.0,
) -> dict:
    """Read lr_min and lr_max for CLR off a range-test curve (a sweep or the 10-point grid).

    Rule (also returned as `rule`):
    1. Smooth the losses with a bias-corrected EMA (factor `smooth`; None =
       auto_smoothing(len)); noise in a sweep would otherwise put the minimum
       on a lucky batch. The start level is the mean of the first raw losses
       over one EMA window (the first loss alone on the grid): the first
       smoothed values average few points and are as noisy as the raw ones.
    2. The curve is cut at its first blown-up point: a non-finite raw loss
       (NaN/inf, treated as diverged) or a smoothed loss above `blowup` times
       the start. Later points are ignored, even if a diverged net's loss
       comes back down.
    3. lr_max = lr at the minimum of the smoothed loss (before the cut) /
       `safety`: the minimum of a range test already sits at the edge of
       instability (in a sweep the loss also lags the lr), so the top of a
       cycle is kept below it.
    4. lr_min = where the loss starts falling for good: the lr just after the
       last point before the minimum whose smoothed loss is still above
       start - fall_frac * (start - minimum). Searching back from the minimum
       makes a noise dip on the plateau irrelevant. If that is not below
       lr_max, lr_min = lr_max / 10.

    Losses are taken to be positive (cross-entropy) for the blow-up test.
    Returns lr_min, lr_max, rule (text), lr_at_min, lr_blowup (first
    blown-up lr or None) and smoothed (the smoothed losses, NaN after the
    first non-finite loss, for the plot).
    Raises ValueError if the lrs are not increasing or the loss never falls
    below its start before blowing up (the sweep must start lower).
    """
    lrs = [float(v) for v in lrs]
    raw = [float(v) for v in losses]
    if len(lrs) != len(raw) or len(lrs) < 3:
        raise ValueError(f"need >= 3 (lr, loss) pairs of equal length, got {len(lrs)} and {len(raw)}")
    if any(b <= a for a, b in zip(lrs, lrs[1:])) or lrs[0] <= 0:
        raise ValueError("learning rates must be positive and strictly increasing")
    if not (safety > 0 and blowup > 1 and 0 < fall_frac < 1):
        raise ValueError(f"bad rule parameters safety={safety}, fall_frac={fall_frac}, blowup={blowup}")
    beta = auto_smoothing(len(raw)) if smooth is None else smooth

    # 1-2. cut at the first non-finite raw loss before smoothing (an inf would poison the EMA) ...
    n = next((i for i, v in enumerate(raw) if not math.isfinite(v)), len(raw))
    if n < 2:
        raise ValueError("the loss is not finite within the first two points: start the range test lower")
    smoothed = ema_smooth(raw[:n], beta)
    head = raw[: min(ema_window(beta), n)]
    start = sum(head) / len(head)
    # ... and at the first smoothed loss above blowup x start.
    n = next((i for i, v in enumerate(smoothed) if v > blowup * start), n)
    curve = smoothed[:n]

    # 3. the minimum, and lr_max a safety factor below it.
    i_min = min(range(n), key=curve.__getitem__) if n else 0
    if i_min == 0 or start - curve[i_min] <= 0:
        raise ValueError("the loss never falls below its start before blowing up: start the range test lower")
    lr_max = lrs[i_min] / safety
    drop = start - curve[i_min]

    # 4. one past the last point before the minimum that has not yet fallen by fall_frac of the drop.
    threshold = start - fall_frac * drop
    above = [i for i in range(i_min) if curve[i] > threshold]
    i_fall = above[-1] + 1 if above else 0
    lr_min = lrs[i_fall]
    fallback = lr_min >= lr_max
    if fallback:
        lr_min = lr_max / 10.0

    rule = (
        f"EMA-smoothed loss (beta={beta:.3g}); start = mean of the first {len(head)} raw loss(es); "
        f"curve cut at the first non-finite loss or smoothed loss > {blowup:g}x start; "
        f"lr_max = lr at the smoothed-loss minimum ({lrs[i_min]:.3g}) / {safety:g}; "
        + (f"lr_min = lr_max / 10 (the loss only fell by {fall_frac:.0%} at {lrs[i_fall]:.3g}, not below lr_max)"
           if fallback else
           f"lr_min = first lr from which on (up to the minimum) the smoothed loss stays at least "
           f"{fall_frac:.0%} of the start-to-minimum drop below the start")
    )
    return {
        "lr_min": lr_min,
        "lr_max": lr_max,
        "rule": rule,
        "lr_at_min": lrs[i_min],
        "lr_blowup": lrs[n] if n < len(lrs) else None,
        "smoothed": smoothed + [math.nan] * (len(raw) - len(smoothed)),
    }


PICKS_TABLE = "lr_range.csv"  # where an lr_range analysis writes the picks chosen_bounds reads


def chosen_bounds(table: pd.DataFrame, source: str = "") -> dict:
    """The (lr_min, lr_max) that runs with 'pick-<study>' train with, from a picks table.

    The exponential sweep is Smith's own method and reads the curve at many
    rates, so its picks win; the grid's are the fallback. A range test that
    gave no bounds is an error that says so, never a made-up rate.
    """
    for curve in ("sweep", "grid"):
        rows = table[(table.curve == curve) & table.lr_max.notna() & table.lr_min.notna()]
        if len(rows):
            r = rows.iloc[0]
            return {"lr_min": float(r.lr_min), "lr_max": float(r.lr_max), "curve": curve}
    errors = "; ".join(f"{r.curve}: {r.error}" for r in table.itertuples() if isinstance(r.error, str) and r.error)
    raise ValueError(f"the LR range test of study '{source}' picked no lr_min/lr_max ({errors or 'no curve'}); "
                     "give lr and lr_min as numbers instead of pick-" + source)


# ---- batch-size growth ------------------------------------------------------


def batch_size_schedule(step: int, start: int = 32, end: int = 16384, *, every: int) -> int:
    """Batch size at optimizer step `step`: start, doubled every `every` steps, capped at end.

    32 -> 16384 takes 9 doublings, so the cap is reached at step 9 * every.
    `every` counts optimizer updates (one per effective batch, however many
    micro-batches it is accumulated from).
    """
    if every <= 0:
        raise ValueError(f"every must be positive, got {every}")
    if not 0 < start <= end:
        raise ValueError(f"need 0 < start <= end, got {start}, {end}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    # Integer doubling, not start * 2 ** (step / every): exact, and no float pow.
    size = start
    for _ in range(step // every):
        if size >= end:
            break
        size *= 2
    return min(size, end)


def accumulation(batch: int, max_micro_batch: int) -> tuple[int, int]:
    """Split `batch` into n_micro equal micro-batches of at most max_micro_batch samples.

    Returns (micro_batch, n_micro) with micro_batch * n_micro == batch: the
    largest divisor of batch not above the cap, so for the power-of-two
    batches of batch_size_schedule it is the largest power of two <= the cap
    (a non-power-of-two cap is rounded down to one).

    Gradient equivalence: with each micro-batch's mean loss multiplied by
    1 / n_micro before .backward(), the accumulated gradient is that of the
    full batch's mean loss, because the micro-batches have equal sizes.
    This holds for models without batch-dependent layers. With BN, each
    micro-batch is normalised with its own statistics (ghost batch norm,
    Hoffer et al. 2017) and the running statistics are updated n_micro
    times per optimizer step, so an accumulated step is *not* the full-batch
    step (MiniGoogLeNet has BN: its large-batch runs are ghost-BN runs with
    micro_batch-sized normalisation groups).
    """
    if batch <= 0 or max_micro_batch <= 0:
        raise ValueError(f"batch and max_micro_batch must be positive, got {batch}, {max_micro_batch}")
    if batch <= max_micro_batch:
        return batch, 1
    # Largest divisor <= cap, searched from the cap down; for a power-of-two
    # batch the first hit is the largest power of two <= cap.
    micro = next(d for d in range(max_micro_batch, 0, -1) if batch % d == 0)
    return micro, batch // micro


def growth_boundaries(start: int, end: int, every: int) -> list[tuple[int, int]]:
    """(samples seen, batch from then on) at each batch change of batch_size_schedule.

    The growing run takes `every` steps at each size, so its k-th change
    comes after every * (start + 2 start + ... ) samples; these sample counts
    are where the matched lr decay (lr_decay_factor) steps down.
    """
    out, samples, size = [], 0, start
    while size < end:
        samples += every * size
        size = min(size * 2, end)
        out.append((samples, size))
    return out


def lr_decay_factor(step: int, batch: int, end: int, *, every: int) -> float:
    """lr multiplier of the lr-decay run that matches a growing batch, at step `step`.

    "Don't decay the learning rate, increase the batch size" (Smith et al.
    2017) compares the two at equal numbers of samples: the decay run keeps
    its batch and divides lr by the same factor the growing run multiplies
    its batch by, at the same sample counts. After `step` steps of `batch`
    samples this returns batch / (the growing run's batch at that point), so
    lr * factor over batch stays equal in both runs.
    """
    seen = step * batch
    size = batch
    for samples, new_size in growth_boundaries(batch, end, every):
        if seen < samples:
            break
        size = new_size
    return batch / size
