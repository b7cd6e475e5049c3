"""MiniGoogLeNet (Zhang et al. 2017's small Inception net, as used by Smith's CLR tutorial) for seed 003 problem 2.

    conv_module(K, k, s)  = Conv(K, kxk, stride s) -> BN -> activation
    inception(a, b)       = concat(conv_module(a, 1x1), conv_module(b, 3x3 same))
    downsample(K)         = concat(conv_module(K, 3x3, stride 2, valid), 3x3 stride-2 max-pool)

    conv(96, 3x3) -> inc(32,32) -> inc(32,48) -> down(80)
    -> inc(112,48) -> inc(96,64) -> inc(80,80) -> inc(48,96) -> down(96)
    -> inc(176,160) -> inc(176,160) -> global avg-pool -> dropout -> dense(num_classes)

BN in the conv_module belongs to the architecture, but bnlab's `bn` argument
switches it like every other model's hidden BN: bn="none" builds plain
Conv -> activation modules (so MiniGoogLeNet can be compared with and without
BN), "hidden" is the reference network, "input+hidden" adds the shared input
BN in front. The reference's dropout 0.5 before the dense layer is
`dropout_hidden` (the shared rule: dropout on the input of FC layers); the
configs set it to 0.5, and create_model's default 0 builds no dropout.

Map sizes: 32x32 -> 15 -> 7 and 28x28 (Fashion-MNIST) -> 13 -> 6 after the two
downsamples, then the global pool makes 336 features on either; the smallest
input that passes is 7x7 (7 -> 3 -> 1).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .layers import LayerSpec, assemble, conv_block, head, stem
from .registry import register_model
from .shapes import flat_features

# (1x1 filters, 3x3 filters) per inception module, "down" + filters per
# downsample module, in forward order after the first conv.
FIRST_CONV = 96
BODY: list[tuple[str, int, int]] = [
    ("inc", 32, 32), ("inc", 32, 48), ("down", 80, 0),
    ("inc", 112, 48), ("inc", 96, 64), ("inc", 80, 80), ("inc", 48, 96), ("down", 96, 0),
    ("inc", 176, 160), ("inc", 176, 160),
]


def strided_conv_block(spec: LayerSpec, in_channels: int, out_channels: int, kernel_size: int,
                       stride: int) -> nn.Sequential:
    """layers.conv_block (Conv -> [BN] -> act, unpadded) with the conv's stride set to `stride`.

    conv_block has no stride argument; building it and then setting the
    stride keeps its BN/bias/activation rules in one place. Conv2d reads
    self.stride at every forward, so this is the same as passing it to the
    constructor (the weight shape does not depend on the stride).
    """
    block = conv_block(spec, in_channels, out_channels, kernel_size, 0)
    block.conv.stride = (stride, stride)
    return block


class Concat(nn.Module):
    """Parallel branches on the same input, concatenated along channels.

    Branches are registered (and so listed by named_modules / bn_layers) in
    the order their outputs are concatenated.
    """

    def __init__(self, branches: OrderedDict[str, nn.Module]) -> None:
        super().__init__()
        for name, branch in branches.items():
            self.add_module(name, branch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.children()], dim=1)


def inception(spec: LayerSpec, in_channels: int, n1x1: int, n3x3: int) -> Concat:
    """concat(1x1 conv_module n1x1, 3x3 same-padded conv_module n3x3): keeps H x W, n1x1 + n3x3 channels."""
    return Concat(OrderedDict([
        ("conv1x1", conv_block(spec, in_channels, n1x1, 1, 0)),
        ("conv3x3", conv_block(spec, in_channels, n3x3, 3, 1)),
    ]))


def downsample(spec: LayerSpec, in_channels: int, n3x3: int) -> Concat:
    """concat(3x3 stride-2 valid conv_module n3x3, 3x3 stride-2 max-pool): H -> (H - 3) // 2 + 1, in + n3x3 channels."""
    # Both branches are 3x3 stride 2 without padding, so their maps have equal sizes.
    return Concat(OrderedDict([
        ("conv3x3", strided_conv_block(spec, in_channels, n3x3, 3, 2)),
        ("pool", nn.MaxPool2d(3, stride=2)),
    ]))


def _features(spec: LayerSpec, input_shape: tuple[int, int, int]) -> nn.Sequential:
    """First conv, the inception/downsample body, then global average pooling to (N, C, 1, 1)."""
    channels = FIRST_CONV
    layers: list[tuple[str, nn.Module]] = [("conv1", conv_block(spec, input_shape[0], FIRST_CONV, 3, 1))]
    n_inc = n_down = 0
    for kind, a, b in BODY:
        if kind == "inc":
            n_inc += 1
            layers.append((f"inc{n_inc}", inception(spec, channels, a, b)))
            channels = a + b
        else:
            n_down += 1
            layers.append((f"down{n_down}", downsample(spec, channels, a)))
            channels += a  # the pool branch passes the input channels through
    layers.append(("pool", nn.AdaptiveAvgPool2d(1)))
    return nn.Sequential(OrderedDict(layers))


@register_model("minigooglenet")
def minigooglenet(*, spec: LayerSpec, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """MiniGoogLeNet: 19 conv_modules (1 + 8 inceptions x 2 + 2 downsamples), global avg-pool, dense on 336 features.

    Parameters with 10 classes: 1,651,114 on 32x32x3 and 1,649,386 on 28x28x1
    with bn="hidden" (1,649,402 / 1,647,674 with bn="none"); the arithmetic is
    in tests/test_minigooglenet.py.
    """
    # The dry run gives 336 features on any input and a clear error if it is too small.
    n_flat = flat_features(lambda shape: _features(spec, shape), input_shape, "minigooglenet")
    return assemble(
        stem(spec, input_shape[0], flatten=False),
        _features(spec, input_shape),
        head(spec, n_flat, [], num_classes, input_is_raw=False),
    )
