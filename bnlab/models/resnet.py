"""A small residual network for 32x32 (and 28x28, 8x8) images: He et al. 2016's CIFAR ResNet, shortened.

    conv3x3(w1) -> [BN] -> act
    -> stage 1: n basic blocks of w1 channels          (H x W)
    -> stage 2: n basic blocks of w2, the first stride 2 (H/2)
    -> stage 3: n basic blocks of w3, the first stride 2 (H/4)
    -> global average pool -> [dropout_hidden] -> Linear(num_classes)

    basic block(in, out, stride) = act( F(x) + shortcut(x) ),
        F = conv3x3(stride) -> [BN] -> act -> conv3x3 -> [BN]
        shortcut = identity, or conv1x1(stride) -> [BN] where the shape changes

widths = [w1, w2, w3] (default [16, 32, 64], as in the paper's CIFAR nets);
`blocks` per stage is 2 (ResNet-14; the paper's ResNet-20 has 3). BN follows
bnlab's shared rule: bn="none" builds the same net without any BN (conv
biases on), "hidden" puts BN after every conv as the paper does, and
"input+hidden" adds the input BN. Dropout, like every model's, goes on the
input of the fully connected layer only. The global pool makes the net
shape-adaptive: any input of at least 1x1 passes (32 -> 16 -> 8, 28 -> 14 -> 7).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .layers import LayerSpec, PointwiseConv2d, check_widths, head, stem
from .registry import register_model

DEFAULT_RESNET_WIDTHS = [16, 32, 64]
BLOCKS_PER_STAGE = 2


def _conv_bn(spec: LayerSpec, in_channels: int, out_channels: int, kernel: int, stride: int) -> nn.Sequential:
    """conv (no bias under BN: BN's beta is the bias) -> [BN]; no activation (the block places them)."""
    conv = PointwiseConv2d if kernel == 1 else nn.Conv2d  # a torch CPU bug for narrow 1x1 strides (layers.py)
    layers: list[tuple[str, nn.Module]] = [
        ("conv", conv(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2,
                      bias=not spec.hidden_bn))]
    if spec.hidden_bn:
        layers.append(("bn", spec.norm(out_channels, 2, "hidden")))
    return nn.Sequential(OrderedDict(layers))


class BasicBlock(nn.Module):
    """Two 3x3 convs with a shortcut around them; the sum goes through the activation."""

    def __init__(self, spec: LayerSpec, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        # registered in forward order (bn_layers and the figures list BN layers in module order)
        self.conv1 = _conv_bn(spec, in_channels, out_channels, 3, stride)
        self.act1 = spec.act()
        self.conv2 = _conv_bn(spec, out_channels, out_channels, 3, 1)
        self.shortcut = (_conv_bn(spec, in_channels, out_channels, 1, stride)
                         if stride != 1 or in_channels != out_channels else nn.Identity())
        self.act2 = spec.act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act2(self.conv2(self.act1(self.conv1(x))) + self.shortcut(x))


class GlobalAvgPool(nn.Module):
    """(N, C, H, W) -> (N, C, 1, 1): the mean over each channel's map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


@register_model("resnet")
def resnet(
    *, spec: LayerSpec, input_shape: tuple[int, int, int], num_classes: int, widths: list[int] | None = None
) -> nn.Module:
    """conv3x3 -> 3 stages of 2 basic blocks (widths channels, stride 2 at stages 2 and 3) -> pool -> FC."""
    widths = check_widths("resnet", DEFAULT_RESNET_WIDTHS if widths is None else widths, length=3)
    first = _conv_bn(spec, input_shape[0], widths[0], 3, 1)
    features: list[tuple[str, nn.Module]] = [("conv1", nn.Sequential(OrderedDict([*first.named_children(),
                                                                                   ("act", spec.act())])))]
    channels = widths[0]
    for stage, width in enumerate(widths, start=1):
        for block in range(1, BLOCKS_PER_STAGE + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            features.append((f"stage{stage}_block{block}", BasicBlock(spec, channels, width, stride)))
            channels = width
    features.append(("pool", GlobalAvgPool()))
    return nn.Sequential(OrderedDict([
        ("stem", stem(spec, input_shape[0], flatten=False)),
        ("features", nn.Sequential(OrderedDict(features))),
        ("head", head(spec, channels, [], num_classes, input_is_raw=False)),
    ]))
