"""LeNet-5 (LeCun et al. 1998) for seed 003 problem 1, with max-pooling and a chosen activation."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from .layers import LayerSpec, assemble, conv_block, head, stem
from .registry import register_model
from .shapes import flat_features

LENET_FC_WIDTHS = [120, 84]


def _features(spec: LayerSpec, input_shape: tuple[int, int, int]) -> nn.Sequential:
    c, h, w = input_shape
    # Pad inputs smaller than the classic 32x32 by 2: MNIST's 28x28 + 2*2 gives the
    # original geometry 32 -> 28 -> 14 -> 10 -> 5, i.e. 16*5*5 = 400 features.
    pad = 2 if min(h, w) < 32 else 0
    return nn.Sequential(OrderedDict([
        ("conv1", conv_block(spec, c, 6, 5, pad)),
        ("pool1", nn.MaxPool2d(2)),
        ("conv2", conv_block(spec, 6, 16, 5, 0)),
        ("pool2", nn.MaxPool2d(2)),
    ]))


@register_model("lenet5")
def lenet5(*, spec: LayerSpec, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """conv 6@5x5 -> pool -> conv 16@5x5 -> pool -> FC 120 -> FC 84 -> FC num_classes.

    Parameters on 28x28x1 with 10 classes and no BN (weights + biases):
    conv1 1*25*6 + 6 = 156; conv2 6*25*16 + 16 = 2,416; fc1 400*120 + 120 = 48,120;
    fc2 120*84 + 84 = 10,164; out 84*10 + 10 = 850; total 61,706 (LeCun's count).
    """
    n_flat = flat_features(lambda shape: _features(spec, shape), input_shape, "lenet5")
    return assemble(
        stem(spec, input_shape[0], flatten=False),
        _features(spec, input_shape),
        head(spec, n_flat, LENET_FC_WIDTHS, num_classes, input_is_raw=False),
    )
