"""How large a batch one forward/backward may take under a memory cap.

The estimate is a formula, not a measurement: what a run computes must not
depend on the machine it ran on (with batch norm the micro-batch size changes
the result), so the same config gives the same micro-batches everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from bnlab.models.accounting import layer_table, totals

BYTES_PER_VALUE = 4  # float32
# Every layer output is kept for the backward pass and gets a gradient of the
# same size during it: two values per activation per sample.
VALUES_PER_ACTIVATION = 2


def activation_bytes_per_sample(model: torch.nn.Module, input_shape: Sequence[int]) -> int:
    """Estimated training memory of one sample's activations (all layer outputs, input included)."""
    activations = totals(layer_table(model, input_shape, include_all=True))["activations"]
    return activations * VALUES_PER_ACTIVATION * BYTES_PER_VALUE


def micro_batch_cap(model: torch.nn.Module, input_shape: Sequence[int], mem_mb: float) -> int:
    """Largest power-of-two batch whose estimated activations fit in mem_mb.

    A power of two divides every batch of the doubling schedule, so each
    accumulated batch splits into equal micro-batches.
    """
    per_sample = activation_bytes_per_sample(model, input_shape)
    fit = int(mem_mb * 2**20 // per_sample)
    if fit < 2:
        raise ValueError(f"batch_mem_mb {mem_mb:g} MB holds fewer than 2 samples of this model "
                         f"({per_sample / 2**20:.2f} MB each, estimated); batch norm needs 2")
    return 2 ** int(math.log2(fit))
