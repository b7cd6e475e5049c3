"""Which samples each optimizer step takes: the batch plan of a run.

Every epoch draws a fresh permutation of the training set and cuts it into
consecutive batches; a tail too short for the next batch is dropped (batch
norm needs full batches, and no sample appears twice in one batch). With a
fixed batch size that is the usual drop-last epoch of n // batch steps. With
a growing batch (seed 003 p. 2.3) the size of step t is batch_at(t), so the
number of steps per epoch shrinks as the batch grows; the run still lasts
`epochs` passes over the data.

The plan is computed up front, so the loop, the learning-rate schedule and
the evaluation points all know the run's length before the first step, and a
resumed run follows the same plan.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class BatchPlan:
    n: int  # training samples
    epochs: int
    sizes: tuple[int, ...]  # batch size of every step
    offsets: tuple[int, ...]  # where each step's batch starts in its epoch's permutation
    epoch_starts: tuple[int, ...]  # first step of every epoch, plus the total at the end

    @property
    def total(self) -> int:
        return len(self.sizes)

    @property
    def fixed(self) -> bool:
        return len(set(self.sizes)) <= 1

    def steps_in_epoch(self, epoch: int) -> int:
        return self.epoch_starts[epoch + 1] - self.epoch_starts[epoch]

    def epoch_of(self, step: int) -> int:
        """Epoch of the 0-based step `step`."""
        if not 0 <= step < self.total:
            raise IndexError(f"step {step} is outside the plan's {self.total} steps")
        # the last epoch starting at or before `step` (an epoch can hold no step only if n is 0)
        return bisect.bisect_right(self.epoch_starts, step) - 1

    def progress(self, steps_done: int) -> float:
        """Epochs completed after `steps_done` steps, counting a partial epoch by its steps.

        Written as (e * k + j) / k so that with a fixed batch it is exactly
        steps_done / steps_per_epoch.
        """
        if steps_done <= 0:
            return 0.0
        e = self.epoch_of(steps_done - 1)
        k = self.steps_in_epoch(e)
        return (e * k + steps_done - self.epoch_starts[e]) / k

    def eval_steps(self, evals_per_epoch: int) -> list[int]:
        """Steps after which to evaluate: evenly spread in every epoch, epoch ends included."""
        points = []
        for e in range(self.epochs):
            k = self.steps_in_epoch(e)
            per = min(evals_per_epoch, k)
            # one division of integers, so a fixed batch gives exactly round(m * k / per)
            points += [round((self.epoch_starts[e] * per + j * k) / per) for j in range(1, per + 1)]
        return sorted(set(points))


def plan_batches(n: int, epochs: int, batch_at: Callable[[int], int]) -> BatchPlan:
    """The plan of `epochs` passes over n samples with batch_at(step) samples per step.

    A batch larger than the training set is cut to n (one full-batch step per epoch).
    """
    if n < 1:
        raise ValueError(f"need training samples, got {n}")
    sizes, offsets, starts = [], [], []
    for _ in range(epochs):
        starts.append(len(sizes))
        offset = 0
        while True:
            size = min(batch_at(len(sizes)), n)
            if offset + size > n:
                break
            sizes.append(size)
            offsets.append(offset)
            offset += size
    starts.append(len(sizes))
    return BatchPlan(n=n, epochs=epochs, sizes=tuple(sizes), offsets=tuple(offsets), epoch_starts=tuple(starts))


def fixed_plan(n: int, epochs: int, batch_size: int) -> BatchPlan:
    return plan_batches(n, epochs, lambda step: batch_size)
