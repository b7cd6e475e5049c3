"""Read-outs of a built model: its BN layers (for the gamma/beta dumps) and its size."""

from __future__ import annotations

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .layers import BN_KIND_ATTR


def bn_layers(model: nn.Module) -> list[tuple[str, _BatchNorm, str]]:
    """Every BN layer in forward order as (qualified name, module, kind), kind 'input' or 'hidden'.

    Models from create_model register modules in forward order, so module
    order is forward order. A BN is recognised by the kind tag its factory sets
    (any implementation), or by type, untagged ones counting as hidden.
    """
    found = []
    for name, module in model.named_modules():
        kind = getattr(module, BN_KIND_ATTR, None)
        if kind is None and isinstance(module, _BatchNorm):
            kind = "hidden"
        if kind is not None:
            found.append((name, module, kind))
    return found


def count_parameters(model: nn.Module) -> int:
    """Number of parameter values (trainable or not; BN running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters())
