"""Fully connected networks: the deep MLP of the init study and seed 002's MNIST MLP."""

from __future__ import annotations

import math

from torch import nn

from .layers import LayerSpec, assemble, check_widths, head, stem
from .registry import register_model

# Five hidden layers: seed 000 ex. 1 asks for at least 5 hidden layers (Glorot's setup).
DEFAULT_MLP_WIDTHS = [256, 256, 256, 256, 256]


@register_model("mlp")
def mlp(
    *, spec: LayerSpec, input_shape: tuple[int, int, int], num_classes: int, widths: list[int] | None = None
) -> nn.Module:
    """flatten -> hidden Linear blocks of `widths` -> Linear(num_classes)."""
    widths = check_widths("mlp", DEFAULT_MLP_WIDTHS if widths is None else widths)
    in_features = math.prod(input_shape)  # (N, C, H, W) -> (N, C*H*W)
    return assemble(
        stem(spec, in_features, flatten=True),
        nn.Sequential(),  # no conv part
        head(spec, in_features, widths, num_classes, input_is_raw=True),
    )
