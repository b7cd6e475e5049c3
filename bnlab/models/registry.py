"""Model registry, timm style: @register_model puts a builder in a dict, create_model looks it up.

A builder is called as builder(spec=LayerSpec, input_shape=(C, H, W),
num_classes=int[, widths=list[int] | None]) and returns an nn.Module; only
builders that declare a `widths` parameter accept widths.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

from torch import nn

from .init import init_weights, resolve_scale
from .layers import LayerSpec, check_choice

Builder = Callable[..., nn.Module]

_MODELS: dict[str, Builder] = {}


def register_model(name: str) -> Callable[[Builder], Builder]:
    """Decorator: register a model builder under name."""

    def decorate(builder: Builder) -> Builder:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = builder
        return builder

    return decorate


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_MODELS)


def accepts_widths(name: str) -> bool:
    """Whether the model's builder takes `widths` (the others have a fixed architecture)."""
    check_choice("model", name, list_models())
    return "widths" in inspect.signature(_MODELS[name]).parameters


def _check_input_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ValueError(f"input_shape must be (channels, height, width) of positive ints, got {input_shape}")
    return shape  # type: ignore[return-value]


def create_model(
    name: str,
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    bn: str = "none",
    activation: str = "relu",
    dropout_in: float = 0.0,
    dropout_hidden: float = 0.0,
    init: str = "default",
    init_scale: float | None = None,
    widths: list[int] | None = None,
    bn_impl: str = "torch",
) -> nn.Module:
    """Build a registered model for inputs of input_shape (C, H, W), initialised by `init`.

    Every string argument is checked before anything is built; a bad value
    raises ValueError listing the valid ones.
    """
    check_choice("model", name, list_models())
    spec = LayerSpec(bn=bn, activation=activation, dropout_in=dropout_in,
                     dropout_hidden=dropout_hidden, bn_impl=bn_impl)
    resolve_scale(init, init_scale)  # fail before building a large model
    shape = _check_input_shape(input_shape)
    if not (isinstance(num_classes, int) and num_classes >= 1):
        raise ValueError(f"num_classes must be a positive int, got {num_classes}")

    builder = _MODELS[name]
    kwargs = {}
    if accepts_widths(name):
        kwargs["widths"] = widths
    elif widths is not None:
        raise ValueError(f"model {name!r} has a fixed architecture and takes no widths (got {widths})")
    model = builder(spec=spec, input_shape=shape, num_classes=num_classes, **kwargs)

    # Freshly built layers already carry PyTorch's default init (and BN 1/0);
    # re-drawing them would only burn random numbers.
    if init != "default":
        init_weights(model, init, init_scale, activation)
    return model
