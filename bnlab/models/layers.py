"""Building blocks shared by every model: BN placement, activation and dropout.

The placement rules live here once, so every architecture follows the same
ones (Ioffe & Szegedy 2015, section 3.2, for BN; seed 003 and Srivastava et
al. 2014 for dropout):
- BN after each hidden conv/linear, before the nonlinearity; never after the
  output layer; optionally also on the network input.
- dropout_in on the raw input (after the input BN); dropout_hidden on the input
  of every fully connected layer whose input is not the raw image.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from .bnlab_bn import bnlab_batch_norm, normalise_eval, normalise_training, on_rows

BN_PLACEMENTS = ("none", "hidden", "input+hidden")

# Activation name -> module class; grid values in the config are these strings.
ACTIVATION_LAYERS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}
ACTIVATIONS = tuple(ACTIVATION_LAYERS)

# A norm factory makes one BN layer: (num_features, dims) -> module, with dims 1
# for (N, C) inputs and 2 for (N, C, H, W). This dict is the one place to bind
# another implementation (e.g. bnlab's own BN with an analytic backward):
# add an entry and pass its key as create_model(..., bn_impl=key).
NormFactory = Callable[[int, int], nn.Module]


class RowsBatchNorm2d(nn.BatchNorm2d):
    """torch's BatchNorm2d; on the CPU, a channels-last input with few channels is normalised on its rows.

    Conv nets train in channels-last layout on the CPU (bnlab/train/tensors.py: convolutions and pooling
    are faster there), but torch's CPU batch norm vectorises over the channels of a channels-last tensor,
    which is slow for a handful of them (LeNet-5's first BN has 6, the 2-conv CNN's 4). For such inputs
    (at most bnlab_bn.ROWS_MAX_CHANNELS) this module computes the same batch norm with bnlab's
    BatchNormFunction on the tensor's memory rows (bnlab_bn.RowsLayout), where every op runs over
    contiguous memory: the same parameters, buffers, statistics and running-statistics update (the same
    sums, in another order), the output channels-last. bench/bn_layout.py measures it in whole training
    steps. Everything else (more channels, a planar input, a GPU, torch.func transforms such as the
    landscape probe's vmap, which cannot see into an autograd.Function) takes torch's path unchanged.
    """

    def _on_rows(self, x: torch.Tensor) -> bool:
        return (x.device.type == "cpu" and self.affine and self.track_running_stats
                and not torch._C._are_functorch_transforms_active() and on_rows(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._on_rows(x):
            return super().forward(x)
        return normalise_training(self, x) if self.training else normalise_eval(self, x)


class PointwiseConv2d(nn.Conv2d):
    """torch's Conv2d for a 1x1 kernel, computed on a planar copy where torch's CPU kernel corrupts memory.

    With torch 2.14.1 on the CPU, the backward pass of a 1x1 convolution with stride 2 on a channels-last
    input of 2 to 7 channels writes outside its buffers: the process dies with "double free or
    corruption", a bus error or a segmentation fault a few steps in (3x3 kernels, stride 1, 1 channel
    and 8 or more channels are unaffected; tests/test_models.py runs the case in a child process).
    ResNet's projection shortcut is such a convolution when its stage is that narrow (the quick
    scale's ResNet at widths 4-8-16). The planar copy gives the same function and gradients; other
    shapes, and every shape on a GPU, take torch's path unchanged.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if 1 < self.in_channels < 8 and self.stride != (1, 1) and x.device.type == "cpu" and x.dim() == 4 \
                and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            # a planar input and a fresh planar copy of the weight (whose gradient flows back to it): a 1x1
            # weight is "contiguous" in both layouts, so .contiguous() would hand torch the parameter itself
            out = self._conv_forward(x.contiguous(), self.weight.clone(memory_format=torch.contiguous_format),
                                     self.bias)
            return out.contiguous(memory_format=torch.channels_last)
        return super().forward(x)


class _DepthwiseInputGradConv(torch.autograd.Function):
    """conv2d(x, weight, bias, stride 1, padding) of a one-channel x; its input gradient as a depthwise conv.

    For one input channel, dL/dx = sum over output channels c of g_c correlated with w_c rotated by 180
    degrees, padded by k - 1 - p: a depthwise convolution of g with the rotated kernels, summed over c.
    The weight and bias gradients are torch's own.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, padding):
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.has_bias = padding, bias is not None
        return F.conv2d(x, weight, bias, 1, padding)

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_x = grad_w = grad_b = None
        if need_w or need_b:
            _, grad_w, grad_b = torch.ops.aten.convolution_backward(
                g, x, weight, [weight.shape[0]] if ctx.has_bias else None, [1, 1], list(ctx.padding), [1, 1],
                False, [0, 0], 1, [False, need_w, need_b and ctx.has_bias])
        if need_x:
            (kh, kw), (ph, pw) = weight.shape[2:], ctx.padding
            rotated = weight.flip(2, 3)  # (C_out, 1, kh, kw): one kernel per output channel
            grad_x = F.conv2d(g, rotated, None, 1, (kh - 1 - ph, kw - 1 - pw), groups=weight.shape[0])
            grad_x = grad_x.sum(dim=1, keepdim=True)
        return grad_x, grad_w, grad_b, None


class OneChannelConv2d(nn.Conv2d):
    """torch's Conv2d on a one-channel input; on the CPU its input gradient is a depthwise convolution.

    A network's first convolution needs an input gradient only when something before it trains: the
    input BN of the "input+hidden" cells (its gamma and beta). torch's CPU kernel for that gradient is
    slow with one input channel: LeNet-5's conv1 (6 @ 5x5 on 28x28, batch 128) takes 11.8 ms against
    1.4 ms for the depthwise form (bench/bn_layout.py measures whole steps). The same function and
    gradients (sums in another order). Anything but stride 1, dilation 1, zero padding of at most
    kernel - 1 on the CPU, or under torch.func transforms, takes torch's path unchanged.
    """

    def _depthwise_grad(self, x: torch.Tensor) -> bool:
        return (x.requires_grad and x.dim() == 4 and x.device.type == "cpu" and self.groups == 1
                and self.stride == (1, 1) and self.dilation == (1, 1) and self.padding_mode == "zeros"
                and isinstance(self.padding, tuple)
                and all(p <= k - 1 for p, k in zip(self.padding, self.kernel_size))
                and not torch._C._are_functorch_transforms_active())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._depthwise_grad(x):
            return _DepthwiseInputGradConv.apply(x, self.weight, self.bias, self.padding)
        return super().forward(x)


def hidden_conv(in_channels: int, out_channels: int, kernel_size: int, *, padding: int, bias: bool) -> nn.Conv2d:
    """A hidden conv layer: OneChannelConv2d on one input channel (its CPU input gradient), else nn.Conv2d."""
    cls = OneChannelConv2d if in_channels == 1 else nn.Conv2d
    return cls(in_channels, out_channels, kernel_size, padding=padding, bias=bias)


def torch_batch_norm(num_features: int, dims: int) -> nn.Module:
    """PyTorch's BatchNorm1d/2d with its defaults (eps 1e-5, momentum 0.1)."""
    return nn.BatchNorm1d(num_features) if dims == 1 else RowsBatchNorm2d(num_features)


# "bnlab": bnlab's own BN with a hand-written backward (models/bnlab_bn.py).
NORM_FACTORIES: dict[str, NormFactory] = {"torch": torch_batch_norm, "bnlab": bnlab_batch_norm}

# Every BN made here carries this attribute, "input" or "hidden", so that
# bn_layers() can find and label BN layers of any implementation.
BN_KIND_ATTR = "bn_kind"


def check_choice(field: str, value: str, allowed: Sequence[str]) -> str:
    """Return value if it is one of allowed, else a ValueError naming the field and the choices."""
    if value not in allowed:
        raise ValueError(f"unknown {field} {value!r}; valid values: {', '.join(allowed)}")
    return value


@dataclass(frozen=True)
class LayerSpec:
    """How a model's layers are built: one per model, read by every block builder."""

    bn: str = "none"
    activation: str = "relu"
    dropout_in: float = 0.0
    dropout_hidden: float = 0.0
    bn_impl: str = "torch"

    def __post_init__(self) -> None:
        check_choice("bn", self.bn, BN_PLACEMENTS)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("bn_impl", self.bn_impl, tuple(NORM_FACTORIES))
        for field in ("dropout_in", "dropout_hidden"):
            p = getattr(self, field)
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{field} must be in [0, 1), got {p}")

    @property
    def hidden_bn(self) -> bool:
        return self.bn in ("hidden", "input+hidden")

    @property
    def input_bn(self) -> bool:
        return self.bn == "input+hidden"

    def act(self) -> nn.Module:
        return ACTIVATION_LAYERS[self.activation]()

    def norm(self, num_features: int, dims: int, kind: str) -> nn.Module:
        module = NORM_FACTORIES[self.bn_impl](num_features, dims)
        setattr(module, BN_KIND_ATTR, kind)
        return module


def stem(spec: LayerSpec, in_channels: int, *, flatten: bool) -> nn.Sequential:
    """What happens to the raw input: [flatten], input BN, dropout_in (empty if none apply).

    flatten=True is the MLP: its input BN is a BatchNorm1d over all pixels,
    (N, C, H, W) -> (N, C*H*W); conv nets normalise per image channel instead.
    """
    layers: list[tuple[str, nn.Module]] = []
    if flatten:
        layers.append(("flatten", nn.Flatten()))
    if spec.input_bn:
        layers.append(("bn", spec.norm(in_channels, 1 if flatten else 2, "input")))
    if spec.dropout_in > 0:
        layers.append(("dropout", nn.Dropout(spec.dropout_in)))
    return nn.Sequential(OrderedDict(layers))


def conv_block(
    spec: LayerSpec, in_channels: int, out_channels: int, kernel_size: int, padding: int
) -> nn.Sequential:
    """Hidden conv -> [BN] -> activation. No dropout: the seeds drop only before FC layers."""
    # With BN right after, the conv bias is redundant: BN subtracts the batch
    # mean (cancelling any constant) and its beta plays the bias's role.
    conv = hidden_conv(in_channels, out_channels, kernel_size, padding=padding, bias=not spec.hidden_bn)
    layers: list[tuple[str, nn.Module]] = [("conv", conv)]
    if spec.hidden_bn:
        layers.append(("bn", spec.norm(out_channels, 2, "hidden")))
    layers.append(("act", spec.act()))
    return nn.Sequential(OrderedDict(layers))


def linear_block(spec: LayerSpec, in_features: int, out_features: int, dropout: float) -> nn.Sequential:
    """[Dropout on its input] -> hidden Linear -> [BN] -> activation."""
    layers: list[tuple[str, nn.Module]] = []
    if dropout > 0:
        layers.append(("dropout", nn.Dropout(dropout)))
    # bias=False under BN for the same reason as in conv_block.
    layers.append(("linear", nn.Linear(in_features, out_features, bias=not spec.hidden_bn)))
    if spec.hidden_bn:
        layers.append(("bn", spec.norm(out_features, 1, "hidden")))
    layers.append(("act", spec.act()))
    return nn.Sequential(OrderedDict(layers))


def head(
    spec: LayerSpec,
    in_features: int,
    widths: Sequence[int],
    num_classes: int,
    *,
    input_is_raw: bool,
) -> nn.Sequential:
    """Fully connected part: hidden Linear blocks of `widths`, then the output Linear.

    input_is_raw=True is the MLP: its input was already flattened and dropped
    (dropout_in) by the stem, so the first FC gets no dropout_hidden. Otherwise
    the input is a conv feature map (N, C, H, W), flattened here to (N, C*H*W),
    and every FC layer including the first gets dropout_hidden on its input.
    """
    layers: list[tuple[str, nn.Module]] = []
    if not input_is_raw:
        layers.append(("flatten", nn.Flatten()))
    n = in_features
    for i, width in enumerate(widths, start=1):
        drop = 0.0 if (i == 1 and input_is_raw) else spec.dropout_hidden
        layers.append((f"fc{i}", linear_block(spec, n, width, drop)))
        n = width
    # Output layer: its input is raw only for a linear model (no hidden layers).
    out: list[tuple[str, nn.Module]] = []
    if spec.dropout_hidden > 0 and not (input_is_raw and not widths):
        out.append(("dropout", nn.Dropout(spec.dropout_hidden)))
    out.append(("linear", nn.Linear(n, num_classes)))  # logits: no BN, no activation
    layers.append(("out", nn.Sequential(OrderedDict(out))))
    return nn.Sequential(OrderedDict(layers))


def conv_stack(
    spec: LayerSpec,
    in_channels: int,
    cfg: Sequence[int | str],
    *,
    input_hw: tuple[int, int] | None = None,
) -> nn.Sequential:
    """VGG-style layer list: an int is a 3x3 pad-1 conv block with that many channels, 'M' a 2x2 max-pool.

    With input_hw given, a pool whose input is already smaller than 2x2 is
    left out (it would produce a 0x0 map); VGG-A on 28x28 needs this:
    28 -> 14 -> 7 -> 3 -> 1, and the fifth pool would see 1x1.
    """
    layers: list[tuple[str, nn.Module]] = []
    channels, n_conv, n_pool = in_channels, 0, 0
    h, w = input_hw if input_hw is not None else (None, None)
    for item in cfg:
        if item == "M":
            if h is not None and min(h, w) < 2:
                continue  # 1x1 map: nothing left to pool
            n_pool += 1
            layers.append((f"pool{n_pool}", nn.MaxPool2d(2)))
            if h is not None:
                h, w = h // 2, w // 2
        else:
            n_conv += 1
            layers.append((f"conv{n_conv}", conv_block(spec, channels, int(item), 3, 1)))
            channels = int(item)  # 3x3 pad 1 keeps H x W
    return nn.Sequential(OrderedDict(layers))


def assemble(stem_: nn.Module, features: nn.Module, head_: nn.Module) -> nn.Sequential:
    """The model: stem -> features -> head, registered in forward order (bn_layers relies on it)."""
    return nn.Sequential(OrderedDict([("stem", stem_), ("features", features), ("head", head_)]))


def check_widths(model: str, widths: Sequence[int], length: int | None = None) -> list[int]:
    """Validate a widths list (positive ints, optionally of a fixed length) and return it as a list."""
    widths = list(widths)
    if length is not None and len(widths) != length:
        raise ValueError(f"{model}: widths must have {length} entries, got {len(widths)}: {widths}")
    if not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths):
        raise ValueError(f"{model}: widths must be positive integers, got {widths}")
    return widths
