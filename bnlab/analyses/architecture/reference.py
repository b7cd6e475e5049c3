"""Reference architectures of seed 003 problem 3, built as real modules (on the meta device by default).

- alexnet_paper: Krizhevsky et al. 2012, Sec. 3.5 / Fig. 2.
- vgg19: Simonyan & Zisserman 2015, Table 1 column E, 224x224x3, 1000 classes.
- vgg_a_cifar: bnlab's own registry model vgg_a at 32x32x3 (no BN, 10 classes).
- torchvision_alexnet / torchvision_vgg19: torchvision's definitions, weights=None,
  as independent cross-checks of the accounting.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from bnlab.models import create_model

# CS231n's convention: the paper's "224x224x3" cannot give 55x55 after an
# 11x11 stride-4 conv without padding; 227x227 (no padding) does:
# (227 - 11) / 4 + 1 = 55. 224x224 with padding 2 (torchvision) also gives 55
# (floor((224 + 4 - 11) / 4) + 1 = 55). The parameter count is the same either way.
ALEXNET_INPUT: tuple[int, int, int] = (3, 227, 227)
VGG_INPUT: tuple[int, int, int] = (3, 224, 224)
CIFAR_INPUT: tuple[int, int, int] = (3, 32, 32)

# VGG19 = Table 1 column E: int = 3x3 stride-1 pad-1 conv, "M" = 2x2 max-pool stride 2.
VGG19_CFG: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                              512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


def _on(device: str | torch.device | None):
    return torch.device(device) if device is not None else torch.device("meta")


def alexnet_paper(groups: int = 2, num_classes: int = 1000, *, conv1_padding: int = 0,
                  device: str | torch.device | None = "meta") -> nn.Sequential:
    """AlexNet as in the paper: conv 96-256-384-384-256, FC 4096-4096-num_classes.

    Input 227x227x3 (ALEXNET_INPUT) with conv1_padding=0, the common (CS231n)
    reading of the paper's 224x224x3; conv1_padding=2 takes 224x224x3 to the
    same 55x55x96. Layers: conv1 11x11/4 -> LRN -> max-pool 3/2 -> conv2 5x5 p2
    -> LRN -> max-pool 3/2 -> conv3 3x3 p1 -> conv4 3x3 p1 -> conv5 3x3 p1 ->
    max-pool 3/2 (6x6x256) -> dropout, FC 4096 -> dropout, FC 4096 -> FC.

    groups=2 is the paper's two-GPU split: the kernels of conv2, conv4 and conv5
    see only the half of the previous layer's maps on their own GPU (Fig. 2,
    Sec. 3.5: "the kernels of the third convolutional layer are connected to all
    kernel maps in the second layer"), so each of their filters has C_in/2 input
    channels. conv1 (both halves see the whole image), conv3 and the FC layers
    are fully connected across GPUs. groups=1 is the single-tower network in
    which every filter sees all input channels; it has more parameters
    (62,378,344 vs 60,965,224 with biases).
    """
    if groups not in (1, 2):
        raise ValueError(f"groups must be 1 (single tower) or 2 (paper's two GPUs), got {groups}")
    with _on(device):
        return nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, 96, 11, stride=4, padding=conv1_padding)),
            ("relu1", nn.ReLU(inplace=True)),
            ("norm1", nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)),
            ("pool1", nn.MaxPool2d(3, stride=2)),
            ("conv2", nn.Conv2d(96, 256, 5, padding=2, groups=groups)),
            ("relu2", nn.ReLU(inplace=True)),
            ("norm2", nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)),
            ("pool2", nn.MaxPool2d(3, stride=2)),
            ("conv3", nn.Conv2d(256, 384, 3, padding=1)),
            ("relu3", nn.ReLU(inplace=True)),
            ("conv4", nn.Conv2d(384, 384, 3, padding=1, groups=groups)),
            ("relu4", nn.ReLU(inplace=True)),
            ("conv5", nn.Conv2d(384, 256, 3, padding=1, groups=groups)),
            ("relu5", nn.ReLU(inplace=True)),
            ("pool5", nn.MaxPool2d(3, stride=2)),
            ("flatten", nn.Flatten()),
            ("drop6", nn.Dropout(0.5)),
            ("fc6", nn.Linear(256 * 6 * 6, 4096)),
            ("relu6", nn.ReLU(inplace=True)),
            ("drop7", nn.Dropout(0.5)),
            ("fc7", nn.Linear(4096, 4096)),
            ("relu7", nn.ReLU(inplace=True)),
            ("fc8", nn.Linear(4096, num_classes)),
        ]))


def vgg19(num_classes: int = 1000, *, bias: bool = True,
          device: str | torch.device | None = "meta") -> nn.Sequential:
    """VGG19 (Table 1, column E) for 224x224x3: 16 conv3 layers in 5 blocks, FC 4096-4096-num_classes.

    Conv modules are named by the paper's block, e.g. conv3_4 = fourth conv of
    the 256-channel block; bias=False drops every bias (the seed's table counts none).
    """
    layers: list[tuple[str, nn.Module]] = []
    with _on(device):
        channels, block, index = 3, 1, 0
        for item in VGG19_CFG:
            if item == "M":
                layers.append((f"pool{block}", nn.MaxPool2d(2, stride=2)))
                block, index = block + 1, 0
            else:
                index += 1
                layers.append((f"conv{block}_{index}", nn.Conv2d(channels, int(item), 3, padding=1, bias=bias)))
                layers.append((f"relu{block}_{index}", nn.ReLU(inplace=True)))
                channels = int(item)
        layers += [
            ("flatten", nn.Flatten()),
            ("fc6", nn.Linear(512 * 7 * 7, 4096, bias=bias)),
            ("relu6", nn.ReLU(inplace=True)),
            ("drop6", nn.Dropout(0.5)),
            ("fc7", nn.Linear(4096, 4096, bias=bias)),
            ("relu7", nn.ReLU(inplace=True)),
            ("drop7", nn.Dropout(0.5)),
            ("fc8", nn.Linear(4096, num_classes, bias=bias)),
        ]
        return nn.Sequential(OrderedDict(layers))


def vgg_a_cifar(num_classes: int = 10, *, device: str | torch.device | None = "meta") -> nn.Module:
    """bnlab's registry model vgg_a for 32x32x3 (CIFAR_INPUT), bn='none'."""
    with _on(device):
        return create_model("vgg_a", input_shape=CIFAR_INPUT, num_classes=num_classes, bn="none")


def torchvision_alexnet(device: str | torch.device | None = "meta") -> nn.Module:
    """torchvision.models.alexnet(weights=None): the one-tower variant with 64-192-384-256-256 channels."""
    import torchvision

    with _on(device):
        return torchvision.models.alexnet(weights=None)


def torchvision_vgg19(device: str | torch.device | None = "meta") -> nn.Module:
    """torchvision.models.vgg19(weights=None) (with an AdaptiveAvgPool2d(7) before the classifier)."""
    import torchvision

    with _on(device):
        return torchvision.models.vgg19(weights=None)
