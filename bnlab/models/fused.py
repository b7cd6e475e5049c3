"""K models of one architecture trained as one (HFTA, Wang et al. 2021): block-diagonal layers.

A fused net runs K same-shaped member models in one forward pass: the K
linear layers of a position as one batched matmul (torch.bmm over a [K, B, D]
tensor), the K convolutions as one grouped convolution over [B, K*C, H, W],
the K batch norms as one batch norm over K*C channels (so every member keeps
its own batch statistics and running averages), pooling and activations as
one op. Every op is block-diagonal across members, so a member's loss reaches
only its own parameters; a diverged member's NaNs stay in its own block.

The members stay real nn.Modules: their parameters and BN buffers are views
into the fused tensors, so a member's own optimizer (any torch.optim one),
its state_dict, bn_layers(), L2 and the co-adaptation probe all work on it
as on an unfused model, and `release(k)` gives it storage of its own again
(a diverged member is frozen that way while the others train on).

Dropout draws each member's masks from that member's own generator, mask by
mask as torch's CPU dropout does (bernoulli_ on an empty tensor of the
member's shape, divided by 1 - p), so on the CPU a fused member sees exactly
the masks of the same run trained alone.

Only nets that are nested nn.Sequentials of the layers below are fusible:
mlp, cnn, cnn2, lenet5 and vgg_a (FUSIBLE_MODELS in bnlab/params.py is
checked against this by tests/test_fused.py). Branching nets (minigooglenet,
resnet) and bnlab's own BN are not.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import OneChannelConv2d, RowsBatchNorm2d

ACTIVATION_FUNCTIONS = {nn.ReLU: torch.relu, nn.Tanh: torch.tanh, nn.Sigmoid: torch.sigmoid}
FUSIBLE_LAYERS = (nn.Flatten, nn.Linear, nn.Conv2d, OneChannelConv2d, nn.BatchNorm1d, nn.BatchNorm2d, RowsBatchNorm2d,
                  nn.MaxPool2d, nn.Dropout, *ACTIVATION_FUNCTIONS)


def leaf_layers(model: nn.Module) -> list[nn.Module]:
    """The model's layers in forward order; ValueError if it is not nested nn.Sequentials of FUSIBLE_LAYERS."""
    layers = []
    for name, module in model.named_modules():
        children = list(module.children())
        if children or isinstance(module, nn.Sequential):  # an empty Sequential (the MLP's features) is no layer
            if not isinstance(module, nn.Sequential):
                raise ValueError(f"not fusible: {name or 'the model'} is a {type(module).__name__}, "
                                 "not an nn.Sequential (branches or a custom forward)")
            continue
        if type(module) not in FUSIBLE_LAYERS:
            raise ValueError(f"not fusible: layer {name} is a {type(module).__name__}")
        if isinstance(module, nn.Conv2d) and (module.groups != 1 or module.padding_mode != "zeros"):
            raise ValueError(f"not fusible: conv {name} has groups {module.groups} / padding {module.padding_mode}")
        if isinstance(module, nn.Flatten) and module.start_dim != 1:
            raise ValueError(f"not fusible: flatten {name} starts at dim {module.start_dim}")
        layers.append(module)
    return layers


def _signature(layer: nn.Module) -> tuple:
    """What must agree between members at one position (dropout rates may differ)."""
    if isinstance(layer, nn.Dropout):
        return ("dropout",)
    shapes = tuple((n, tuple(t.shape)) for n, t in [*layer.named_parameters(), *layer.named_buffers()])
    extra = ()
    if isinstance(layer, nn.Conv2d):
        extra = (layer.stride, layer.padding, layer.dilation)
    elif isinstance(layer, nn.MaxPool2d):
        extra = (layer.kernel_size, layer.stride, layer.padding, layer.dilation, layer.ceil_mode)
    elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
        extra = (layer.eps, layer.momentum, layer.affine, layer.track_running_stats)
    return (type(layer).__name__, shapes, extra)


def check_fusible(models: Sequence[nn.Module]) -> list[list[nn.Module]]:
    """Per member its leaf layers; ValueError naming the first difference if they cannot be fused."""
    if not models:
        raise ValueError("no models to fuse")
    per_member = [leaf_layers(m) for m in models]
    first = [_signature(layer) for layer in per_member[0]]
    for k, layers in enumerate(per_member[1:], start=1):
        other = [_signature(layer) for layer in layers]
        if other != first:
            at = next((i for i, (a, b) in enumerate(zip(first, other)) if a != b), min(len(first), len(other)))
            raise ValueError(f"not fusible: member {k} differs from member 0 at layer {at}")
    return per_member


WEIGHTED = (nn.Linear, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d)


def _member_view(fused: torch.Tensor, k: int, n: int, stacked: bool) -> torch.Tensor:
    """Member k's part of a fused tensor: index k of a stack, or rows k*n .. (k+1)*n of a concatenation."""
    return fused[k] if stacked else fused[k * n : (k + 1) * n]


class FusedNet(nn.Module):
    """The K members as one module: forward(x) -> logits [K, B, classes].

    x is either [K, B, C, H, W] (each member its own batch: training) or
    [B, C, H, W] (one batch for every member: evaluation).
    """

    def __init__(self, members: Sequence[nn.Module], generators: Sequence[torch.Generator] | None = None,
                 image_format: torch.memory_format = torch.contiguous_format) -> None:
        super().__init__()
        per_member = check_fusible(members)
        self.k = len(members)
        # a plain list, not submodules: the fused net's parameters are the fused tensors alone
        self.members = list(members)
        self.generators = list(generators) if generators is not None else [None] * self.k
        # per position: (kind, member 0's layer for the settings, every member's layer, fused tensors by name)
        self.ops: list[tuple[str, nn.Module, list[nn.Module], dict[str, torch.Tensor]]] = []
        self.fused_params = nn.ParameterList()
        for layers in zip(*per_member):
            layer = layers[0]
            tensors = self._fuse_tensors(list(layers)) if isinstance(layer, WEIGHTED) else {}
            # bnlab's RowsBatchNorm2d and OneChannelConv2d are torch's layers with CPU shortcuts; the fused
            # net runs its own BN and grouped conv
            kind = next((base.__name__ for base in (nn.BatchNorm2d, nn.Conv2d) if isinstance(layer, base)),
                        type(layer).__name__)
            self.ops.append((kind, layer, list(layers), tensors))
        self.flat_input = isinstance(per_member[0][0], nn.Flatten)
        # the layout of a member's image batch when it trains alone (channels-last for conv nets,
        # bnlab/train/tensors.py): its dropout masks on images are drawn in that memory order
        self.image_format = image_format

    # -- storage: fused tensors, member views -------------------------------------------------
    def _fuse_tensors(self, layers: list[nn.Module]) -> dict[str, torch.Tensor]:
        """Stack the members' parameters and buffers of one position; members get views of them.

        Linear weights stack to [K, O, D] (biases [K, O]) for bmm; conv kernels and BN vectors
        concatenate along dim 0, the layout of a grouped conv and of a BN over K*C channels.
        """
        tensors: dict[str, torch.Tensor] = {}
        stacked = isinstance(layers[0], nn.Linear)
        for name, _ in list(layers[0].named_parameters(recurse=False)):
            originals = [getattr(layer, name) for layer in layers]
            values = [p.detach() for p in originals]
            fused = nn.Parameter(torch.stack(values) if stacked else torch.cat(values))
            self.fused_params.append(fused)
            for k, layer in enumerate(layers):
                layer._parameters[name] = nn.Parameter(_member_view(fused.data, k, len(values[0]), stacked),
                                                       requires_grad=originals[k].requires_grad)
            tensors[name] = fused
        for name, buffer in list(layers[0].named_buffers(recurse=False)):
            if buffer is None:
                continue
            values = [getattr(layer, name) for layer in layers]
            scalar = values[0].dim() == 0  # num_batches_tracked: one counter per member
            fused = torch.stack(values) if scalar else torch.cat(values)
            for k, layer in enumerate(layers):
                layer._buffers[name] = fused[k] if scalar else _member_view(fused, k, len(values[0]), False)
            tensors[name] = fused
        return tensors

    def _apply(self, fn, recurse=True):
        raise RuntimeError("move the member models before fusing them; a fused net stays where it was built")

    def train(self, mode: bool = True) -> "FusedNet":
        self.training = mode
        for member in self.members:
            member.train(mode)
        return self

    def bind_grads(self) -> list[torch.Tensor]:
        """Give every fused parameter a zero gradient and every member parameter a view of it.

        Backward then accumulates into those tensors in place, so a member's optimizer
        sees its gradient without a copy; zero them (torch._foreach_zero_) before each step.
        """
        grads = []
        for kind, _, layers, tensors in self.ops:
            for name, fused in tensors.items():
                if not isinstance(fused, nn.Parameter):
                    continue
                fused.grad = torch.zeros_like(fused)
                grads.append(fused.grad)
                n = len(getattr(layers[0], name))
                for k, member_layer in enumerate(layers):
                    getattr(member_layer, name).grad = _member_view(fused.grad, k, n, kind == "Linear")
        return grads

    def release(self, k: int) -> None:
        """Member k gets its own copies of its parameters and buffers: later fused steps leave it as it is."""
        for module in self.members[k].modules():
            for name, p in list(module._parameters.items()):
                if p is not None:
                    module._parameters[name] = nn.Parameter(p.detach().clone(), requires_grad=p.requires_grad)
            for name, b in list(module._buffers.items()):
                if b is not None:
                    module._buffers[name] = b.clone()

    # -- forward --------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.k
        shared = x.dim() == 4
        if self.flat_input:
            h = x.reshape(len(x), -1).expand(k, -1, -1) if shared else x.reshape(k, x.shape[1], -1)
            layout = "flat"
        else:
            if shared:
                h = x.repeat(1, k, 1, 1)
            else:
                b = x.shape[1]
                h = x.transpose(0, 1).reshape(b, k * x.shape[2], *x.shape[3:])
            layout = "conv"
        for kind, layer, layers, tensors in self.ops:
            h, layout = self._apply_op(kind, layer, layers, tensors, h, layout)
        if layout != "flat":
            raise ValueError("a fused net must end in a linear layer")
        return h

    def _apply_op(self, kind, layer, layers, tensors, h, layout):
        k = self.k
        if kind == "Flatten":
            if layout == "conv":  # [B, K*C, H, W] -> [K, B, C*H*W]
                h = h.reshape(h.shape[0], k, -1).transpose(0, 1)
            return h, "flat"
        if kind == "Linear":
            if layout != "flat":
                raise ValueError("linear layer on a feature map: add a Flatten")
            w, b = tensors["weight"], tensors.get("bias")  # [K, O, D], [K, O] or None
            if b is None:
                return torch.bmm(h, w.transpose(1, 2)), layout
            return torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2)), layout
        if kind == "Conv2d":
            return F.conv2d(h, tensors["weight"], tensors.get("bias"), layer.stride,
                            layer.padding, layer.dilation, groups=k), layout
        if kind in ("BatchNorm1d", "BatchNorm2d"):
            return self._batch_norm(layer, tensors, h, layout), layout
        if kind == "MaxPool2d":
            return F.max_pool2d(h, layer.kernel_size, layer.stride, layer.padding, layer.dilation,
                                ceil_mode=layer.ceil_mode), layout
        if kind == "Dropout":
            return self._dropout(layers, h, layout), layout
        return ACTIVATION_FUNCTIONS[type(layer)](h), layout

    def _batch_norm(self, layer, tensors, h, layout):
        training = self.training or not layer.track_running_stats
        if self.training and layer.track_running_stats:
            tensors["num_batches_tracked"].add_(1)
        args = (tensors.get("running_mean"), tensors.get("running_var"), tensors.get("weight"), tensors.get("bias"),
                training,
                layer.momentum if layer.momentum is not None else 0.0, layer.eps)
        if layout == "conv":
            return F.batch_norm(h, *args)
        kk, b, d = h.shape  # [K, B, D] -> [B, K*D]: each member's features are channels of their own
        out = F.batch_norm(h.transpose(0, 1).reshape(b, kk * d), *args)
        return out.view(b, kk, d).transpose(0, 1)

    def _dropout(self, layers, h, layout):
        if not self.training:
            return h
        noises = []
        for k, layer in enumerate(layers):
            part = h[k] if layout == "flat" else h[:, k * (h.shape[1] // self.k) : (k + 1) * (h.shape[1] // self.k)]
            p = layer.p
            if p == 0:
                noises.append(torch.ones_like(part))
                continue
            # torch's CPU dropout: noise = empty_like(x).bernoulli_(1 - p) / (1 - p); x * noise
            fmt = self.image_format if part.dim() == 4 else torch.contiguous_format
            noise = torch.empty_like(part, memory_format=fmt)
            noise.bernoulli_(1 - p, generator=self.generators[k])
            noises.append(noise.div_(1 - p))
        noise = torch.stack(noises) if layout == "flat" else torch.cat(noises, dim=1)
        return h * noise
