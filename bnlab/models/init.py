"""Parameter initialisation schemes of the init study (seed 000 ex. 1, seed 001 s5).

Each scheme sets the weight and bias of one nn.Linear / nn.Conv2d; BN layers
are always reset to gamma = 1, beta = 0 so that only the scheme differs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from .layers import ACTIVATIONS, BN_KIND_ATTR, check_choice

WeightLayer = nn.Linear | nn.Conv2d
# (layer, scale, activation) -> None, in place
Initializer = Callable[[WeightLayer, float | None, str], None]


def _default(layer: WeightLayer, scale: float | None, activation: str) -> None:
    # PyTorch's own: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)), bias likewise.
    layer.reset_parameters()


def _zeros(layer: WeightLayer, scale: float | None, activation: str) -> None:
    nn.init.zeros_(layer.weight)


def _normal(layer: WeightLayer, scale: float | None, activation: str) -> None:
    nn.init.normal_(layer.weight, 0.0, scale)


def _uniform(layer: WeightLayer, scale: float | None, activation: str) -> None:
    nn.init.uniform_(layer.weight, -scale, scale)


def _xavier(layer: WeightLayer, scale: float | None, activation: str) -> None:
    # Glorot uniform, U(+-gain*sqrt(6/(fan_in+fan_out))); gain for tanh 5/3, relu sqrt 2, sigmoid 1.
    nn.init.xavier_uniform_(layer.weight, gain=nn.init.calculate_gain(activation))


def _kaiming(layer: WeightLayer, scale: float | None, activation: str) -> None:
    # He normal, N(0, 2/fan_in): derived for ReLU, used as such for every activation.
    nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")


INITIALIZERS: dict[str, Initializer] = {
    "default": _default,
    "zeros": _zeros,
    "normal": _normal,
    "uniform": _uniform,
    "xavier": _xavier,
    "kaiming": _kaiming,
}
INIT_SCHEMES = tuple(INITIALIZERS)

# Schemes with a free scale, and its value when none is given:
# normal: the std (N(0, 1) in seed 000); uniform: the bound (U(-0.5, 0.5)).
DEFAULT_SCALES: dict[str, float] = {"normal": 1.0, "uniform": 0.5}


def resolve_scale(scheme: str, scale: float | None) -> float | None:
    """Check scheme and scale together; return the scale the scheme will use (None if it has none)."""
    check_choice("init", scheme, INIT_SCHEMES)
    if scheme not in DEFAULT_SCALES:
        if scale is not None:
            raise ValueError(
                f"init_scale={scale} given with init {scheme!r}, which has no scale; "
                f"init_scale applies only to: {', '.join(DEFAULT_SCALES)}"
            )
        return None
    if scale is None:
        return DEFAULT_SCALES[scheme]
    scale = float(scale)
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"init_scale must be a positive number, got {scale}")
    return scale


@torch.no_grad()
def init_weights(model: nn.Module, scheme: str, scale: float | None = None, activation: str = "relu") -> None:
    """Initialise every Linear/Conv2d of model by scheme, in place; biases 0 except 'default'; BN gamma 1, beta 0."""
    scale = resolve_scale(scheme, scale)
    check_choice("activation", activation, ACTIVATIONS)
    initializer = INITIALIZERS[scheme]
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            initializer(module, scale, activation)
            if scheme != "default" and module.bias is not None:
                nn.init.zeros_(module.bias)
        elif hasattr(module, BN_KIND_ATTR) or isinstance(module, nn.modules.batchnorm._BatchNorm):
            if getattr(module, "weight", None) is not None:
                nn.init.ones_(module.weight)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
