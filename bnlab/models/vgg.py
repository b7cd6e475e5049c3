"""VGG (Simonyan & Zisserman 2015) for 32x32 inputs, as layer lists plus one generic builder."""

from __future__ import annotations

from torch import nn

from .layers import LayerSpec, assemble, conv_stack, head, stem
from .registry import register_model
from .shapes import flat_features

# int = 3x3 pad-1 conv block with that many channels, "M" = 2x2 max-pool.
VGG_LAYERS: dict[str, list[int | str]] = {
    "vgg_a": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
}
# Classifier for CIFAR-sized inputs (the ImageNet VGG uses 4096-4096).
VGG_FC_WIDTHS = [512, 512]


def _vgg(name: str, spec: LayerSpec, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    # input_hw lets conv_stack skip pools on 1x1 maps (28x28: 28 -> 14 -> 7 -> 3 -> 1).
    make = lambda shape: conv_stack(spec, shape[0], VGG_LAYERS[name], input_hw=shape[1:])  # noqa: E731
    n_flat = flat_features(make, input_shape, name)  # 512 * 1 * 1 for 32x32 and 28x28
    return assemble(
        stem(spec, input_shape[0], flatten=False),
        make(input_shape),
        head(spec, n_flat, VGG_FC_WIDTHS, num_classes, input_is_raw=False),
    )


@register_model("vgg_a")
def vgg_a(*, spec: LayerSpec, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """VGG-A (VGG11): 8 conv layers, 5 pools, FC 512-512-num_classes; 9,750,922 parameters on CIFAR-10 without BN."""
    return _vgg("vgg_a", spec, input_shape, num_classes)
