"""The learning rate of every optimizer step, from a run's schedule parameters."""

from __future__ import annotations

from typing import Callable

from bnlab import schedules
from bnlab.params import RunSpec


def lr_function(spec: RunSpec, steps_per_epoch: int, total_steps: int) -> Callable[[int], float] | None:
    """step (0-based) -> learning rate; None for a constant rate (nothing to set per step).

    A pure function of the step, so a resumed run continues the same schedule
    without any scheduler state in its checkpoint.
    """
    kind = spec.lr_schedule
    if spec.grows and spec.batch_growth_via == "lr":
        # The batch stays; lr falls by the factor a growing batch would rise by, at the same samples.
        end = int(spec.batch_growth_max)
        return lambda it: spec.lr * schedules.lr_decay_factor(it, spec.batch_size, end,
                                                              every=spec.batch_growth_every)
    if kind == "constant":
        return None
    if kind == "range_test":
        return lambda it: schedules.range_test_lr(it, total_steps, float(spec.lr_min), spec.lr)
    period = max(1, round(float(spec.lr_period) * steps_per_epoch))
    if kind in schedules.CLR_MODES:
        gamma = float(spec.lr_gamma) if kind == "exp_range" else 1.0
        return lambda it: schedules.clr(it, float(spec.lr_min), spec.lr, period, kind, gamma)
    if kind == "step_decay":
        return lambda it: schedules.step_decay(it, spec.lr, float(spec.lr_gamma), period)
    raise ValueError(f"unknown lr_schedule '{kind}'")
