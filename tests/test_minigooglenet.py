"""MiniGoogLeNet: the spec's shape and parameter count, BN switchable, dropout before the dense layer.

Forward/backward for every bn placement and input shape is in test_models.py
(parametrised over the registry); these tests only build models, plus a few
tiny forwards.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from bnlab.models import bn_layers, count_parameters, create_model, list_models

N_CONV_MODULES = 19  # conv1 + 8 inceptions x (1x1, 3x3) + 2 downsample convs


def build(shape=(1, 28, 28), **kwargs) -> nn.Module:
    return create_model("minigooglenet", input_shape=shape, num_classes=10, **kwargs)


def leaves(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if not list(m.children()) and not isinstance(m, nn.Sequential)]


def test_registered():
    assert "minigooglenet" in list_models()


# Hand count, 3x3 kernels = 9 weights per (in, out) pair, no biases (BN follows every conv):
#   conv1      3 -> 96:                 3*9*96                    =     2,592
#   inc(32,32)  on  96: 96*32  +  96*9*32  =  3,072 +  27,648     =    30,720  -> 64 ch
#   inc(32,48)  on  64: 64*32  +  64*9*48  =  2,048 +  27,648     =    29,696  -> 80 ch
#   down(80)    on  80: 80*9*80                                   =    57,600  -> 80+80 = 160 ch
#   inc(112,48) on 160: 160*112 + 160*9*48 = 17,920 +  69,120     =    87,040  -> 160 ch
#   inc(96,64)  on 160: 160*96  + 160*9*64 = 15,360 +  92,160     =   107,520  -> 160 ch
#   inc(80,80)  on 160: 160*80  + 160*9*80 = 12,800 + 115,200     =   128,000  -> 160 ch
#   inc(48,96)  on 160: 160*48  + 160*9*96 =  7,680 + 138,240     =   145,920  -> 144 ch
#   down(96)    on 144: 144*9*96                                  =   124,416  -> 144+96 = 240 ch
#   inc(176,160) on 240: 240*176 + 240*9*160 = 42,240 + 345,600   =   387,840  -> 336 ch
#   inc(176,160) on 336: 336*176 + 336*9*160 = 59,136 + 483,840   =   542,976  -> 336 ch
#   conv weights                                                   = 1,644,320
#   dense 336*10 + 10                                              =     3,370
# Conv output channels: 96 + 64 + 80 + 80 + 160*3 + 144 + 96 + 336*2 = 1,712.
# bn="hidden": + gamma, beta per channel = 3,424 -> 1,651,114 (32x32x3).
# bn="none":   + one conv bias per channel = 1,712 -> 1,649,402.
# (Keras's MiniGoogLeNet keeps the conv biases and counts BN's two running
# statistics as parameters: 1,647,690 + 1,712 + 4*1,712 = 1,656,250, its summary's total.)
# 28x28x1: conv1 has 1*9*96 = 864 weights, 1,728 fewer; the size does not
# matter (global pooling), so 1,649,386 (hidden) and 1,647,674 (none).
@pytest.mark.parametrize(
    "shape, bn, expected",
    [
        ((3, 32, 32), "hidden", 1_651_114),
        ((3, 32, 32), "none", 1_649_402),
        ((1, 28, 28), "hidden", 1_649_386),
        ((1, 28, 28), "none", 1_647_674),
        ((1, 28, 28), "input+hidden", 1_649_386 + 2),  # input BatchNorm2d(1): one gamma, one beta
    ],
)
def test_parameter_count(shape, bn, expected):
    assert count_parameters(build(shape, bn=bn)) == expected


@pytest.mark.parametrize("shape, sizes", [((1, 28, 28), [28, 13, 6]), ((3, 32, 32), [32, 15, 7])])
def test_feature_map_sizes(shape, sizes):
    # 3x3 stride-2 valid: (H - 3) // 2 + 1, so 28 -> 13 -> 6 and 32 -> 15 -> 7
    model = build(shape).eval()
    seen = {}
    hooks = [getattr(model.features, name).register_forward_hook(
        lambda mod, inp, out, name=name: seen.__setitem__(name, tuple(out.shape[1:])))
        for name in ("conv1", "down1", "down2", "inc8", "pool")]
    with torch.no_grad():
        model(torch.randn(1, *shape))
    for h in hooks:
        h.remove()
    assert seen["conv1"] == (96, sizes[0], sizes[0])
    assert seen["down1"] == (160, sizes[1], sizes[1])
    assert seen["down2"] == (240, sizes[2], sizes[2])
    assert seen["inc8"] == (336, sizes[2], sizes[2])
    assert seen["pool"] == (336, 1, 1)


def test_structure_conv_bn_act():
    model = build(bn="hidden")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == N_CONV_MODULES
    assert [c.out_channels for c in convs][:3] == [96, 32, 32]
    strided = [c for c in convs if c.stride == (2, 2)]
    assert [(c.out_channels, c.kernel_size, c.padding) for c in strided] == [(80, (3, 3), (0, 0)),
                                                                            (96, (3, 3), (0, 0))]
    pools = [m for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    assert [(p.kernel_size, p.stride) for p in pools] == [(3, 2), (3, 2)]
    seq = leaves(model)
    for i, m in enumerate(seq):
        if isinstance(m, nn.Conv2d):  # Conv -> BN -> ReLU, no conv bias under BN
            assert isinstance(seq[i + 1], _BatchNorm) and isinstance(seq[i + 2], nn.ReLU)
            assert m.bias is None
    assert [k for _, _, k in bn_layers(model)] == ["hidden"] * N_CONV_MODULES
    out = seq[-1]
    assert isinstance(out, nn.Linear) and (out.in_features, out.out_features) == (336, 10)


def test_bn_switch_and_input_bn():
    plain = build(bn="none")
    assert bn_layers(plain) == []
    assert all(c.bias is not None for c in plain.modules() if isinstance(c, nn.Conv2d))
    found = bn_layers(build((3, 32, 32), bn="input+hidden"))
    assert len(found) == N_CONV_MODULES + 1
    name, first, kind = found[0]
    assert (name, kind, first.num_features) == ("stem.bn", "input", 3) and isinstance(first, nn.BatchNorm2d)


def test_dropout_only_before_the_dense_layer():
    seq = leaves(build(dropout_hidden=0.5))
    drops = [i for i, m in enumerate(seq) if isinstance(m, nn.Dropout)]
    assert len(drops) == 1 and seq[drops[0]].p == 0.5
    assert isinstance(seq[drops[0] - 1], nn.Flatten) and isinstance(seq[drops[0] + 1], nn.Linear)
    assert not any(isinstance(m, nn.Dropout) for m in build().modules())


def test_activation_from_argument():
    model = build(activation="tanh")
    assert sum(isinstance(m, nn.Tanh) for m in model.modules()) == N_CONV_MODULES
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())


def test_widths_refused_and_small_input():
    with pytest.raises(ValueError, match="takes no widths"):
        build(widths=[8])
    with pytest.raises(ValueError, match=r"minigooglenet.*7x7"):  # 7 -> 3 -> 1 is the smallest
        build((1, 6, 6))


def test_bnlab_bn_and_init_on_a_tiny_input():
    torch.manual_seed(0)
    model = build((1, 8, 8), bn="hidden", bn_impl="bnlab", init="kaiming")
    assert len(bn_layers(model)) == N_CONV_MODULES
    logits = model(torch.randn(2, 1, 8, 8))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
