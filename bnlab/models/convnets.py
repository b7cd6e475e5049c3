"""Small mixed CNN/FC networks of the seeds: `cnn` (seed 000 ex. 2) and `cnn2` (seed 002)."""

from __future__ import annotations

from torch import nn

from .layers import LayerSpec, assemble, check_widths, conv_stack, head, stem
from .registry import register_model
from .shapes import flat_features

# [conv1, conv2, conv3, fc1, fc2]: "at least 3 conv and at least 2 fully connected hidden layers"
DEFAULT_CNN_WIDTHS = [32, 64, 128, 256, 128]
# [conv1, conv2]: "two convolution layers, both with 4 kernels, each of size 3, stride 1, padding 1"
DEFAULT_CNN2_WIDTHS = [4, 4]


def _conv_fc_net(
    model: str,
    spec: LayerSpec,
    input_shape: tuple[int, int, int],
    num_classes: int,
    conv_widths: list[int],
    fc_widths: list[int],
) -> nn.Module:
    """(3x3 conv block, 2x2 max-pool) per conv width, then FC blocks, then the output layer."""
    cfg = [x for width in conv_widths for x in (width, "M")]
    make = lambda shape: conv_stack(spec, shape[0], cfg)  # noqa: E731
    n_flat = flat_features(make, input_shape, model)
    return assemble(
        stem(spec, input_shape[0], flatten=False),
        make(input_shape),
        head(spec, n_flat, fc_widths, num_classes, input_is_raw=False),
    )


@register_model("cnn")
def cnn(
    *, spec: LayerSpec, input_shape: tuple[int, int, int], num_classes: int, widths: list[int] | None = None
) -> nn.Module:
    """3 x (conv3x3, act, maxpool2) -> FC -> FC -> FC num_classes; 32x32 -> 4x4, 8x8 -> 1x1 maps."""
    widths = check_widths("cnn", DEFAULT_CNN_WIDTHS if widths is None else widths, length=5)
    return _conv_fc_net("cnn", spec, input_shape, num_classes, widths[:3], widths[3:])


@register_model("cnn2")
def cnn2(
    *, spec: LayerSpec, input_shape: tuple[int, int, int], num_classes: int, widths: list[int] | None = None
) -> nn.Module:
    """2 x (conv3x3, act, maxpool2) -> FC num_classes: seed 002's small CNN."""
    widths = check_widths("cnn2", DEFAULT_CNN2_WIDTHS if widths is None else widths, length=2)
    return _conv_fc_net("cnn2", spec, input_shape, num_classes, widths, [])
