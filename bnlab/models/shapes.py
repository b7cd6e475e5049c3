"""Feature-map sizes by a dry forward on the meta device, instead of arithmetic by hand.

A model's conv part is given as a function input_shape -> module; building
it under torch.device("meta") allocates no memory, draws no random numbers
and its forward only propagates shapes, so this is free even for VGG.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

FeatureBuilder = Callable[[tuple[int, int, int]], nn.Module]

_MAX_SEARCH = 512  # largest square input tried when looking for the minimum size


def _dry_run(make_features: FeatureBuilder, input_shape: tuple[int, int, int]) -> torch.Size | None:
    """Output shape (2, ...) of the features for a batch of two, or None if the input is too small."""
    with torch.device("meta"):
        features = make_features(input_shape)
        try:
            # batch of 2: BN in training mode refuses one value per channel (1x1 maps)
            out = features(torch.zeros(2, *input_shape))
        except RuntimeError:  # a kernel or pool larger than its input
            return None
    return out.shape if out.numel() > 0 else None


def min_square_input(make_features: FeatureBuilder, channels: int) -> int | None:
    """Smallest side s such that an s x s input passes through the features, or None."""
    for side in range(1, _MAX_SEARCH + 1):
        if _dry_run(make_features, (channels, side, side)) is not None:
            return side
    return None


def flat_features(make_features: FeatureBuilder, input_shape: tuple[int, int, int], model: str) -> int:
    """Number of features after flattening the conv part's output, C*H*W.

    Raises a ValueError naming the model and the minimum input size when the
    input is too small for the architecture.
    """
    shape = _dry_run(make_features, input_shape)
    if shape is None:
        c, h, w = input_shape
        side = min_square_input(make_features, c)
        need = f"at least {side}x{side} pixels" if side else "a larger input"
        raise ValueError(f"model {model!r} needs an input of {need}; got {h}x{w} (input_shape {input_shape})")
    return int(shape[1:].numel())
