"""bnlab's own batch normalisation, with a hand-written backward pass (seed 001 s1, seed 004 s2.1).

Per channel c, over every element of that channel in the batch (N for (N, C)
inputs, N*L for (N, C, L), N*H*W for (N, C, H, W)); M is that element count:

    mu_c    = 1/M sum x                      var_c = 1/M sum (x - mu_c)^2   (biased)
    x_hat   = (x - mu_c) / sqrt(var_c + eps) y     = gamma_c * x_hat + beta_c

`BatchNormFunction` is the training-mode forward and its analytic backward;
`BnlabBatchNorm1d` / `BnlabBatchNorm2d` are modules with the same parameters,
buffers, defaults and running-statistics update as torch.nn.BatchNorm1d/2d,
so they are drop-in replacements in bnlab's models (state dicts interchange).

    from bnlab.models.bnlab_bn import BnlabBatchNorm2d
    bn = BnlabBatchNorm2d(16)               # weight (gamma), bias (beta), running_mean/var
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable


def _reduce_dims(x: Tensor) -> tuple[int, ...]:
    """Every dim but the channel dim 1: (0,) for (N, C), (0, 2) for (N, C, L), (0, 2, 3) for (N, C, H, W)."""
    return (0, *range(2, x.dim()))


def _per_channel(v: Tensor, x: Tensor) -> Tensor:
    """(C,) -> (1, C, 1, ...) broadcastable against x."""
    return DimsLayout(x).expand(v)


# Up to this many channels a channels-last input is normalised on its rows (RowsLayout): LeNet-5's first
# BN (6 channels), the 2-conv CNN's (4). Forward + backward of one BN at batch 128, 1 thread, 2-core AMD
# EPYC: 4 x 28 x 28 1.1-1.8 ms against torch's 5.3-6.9, 6 x 28 x 28 1.6-2.4 against 5.8-6.9; at 8 x 14 x 14
# the two are alike (0.61-0.83 ms, torch 0.61-0.76), and at 16 channels and more torch's channels-last
# kernel, which vectorises over the channels, is as fast or faster. bench/bn_layout.py: whole steps.
ROWS_MAX_CHANNELS = 8


class DimsLayout:
    """x as it is: per-channel sums over every dim but 1, per-channel vectors broadcast as (1, C, 1, ...)."""

    def __init__(self, x: Tensor) -> None:
        self.dims = _reduce_dims(x)
        self.ndim = x.dim()

    def flat(self, t: Tensor) -> Tensor:
        return t

    def unflat(self, t: Tensor) -> Tensor:
        return t

    def mean(self, t: Tensor) -> Tensor:
        return t.mean(dim=self.dims)

    def sum(self, t: Tensor) -> Tensor:
        return t.sum(dim=self.dims)

    def expand(self, v: Tensor) -> Tensor:
        return v.reshape(1, -1, *([1] * (self.ndim - 2)))


class RowsLayout:
    """A channels-last (N, C, H, W) tensor as its memory: N*H rows of W*C values, the channel repeating every C.

    Sums run down the rows and then over the W repeats; a per-channel vector is tiled W times along a
    row. Every elementwise op then runs over contiguous memory. Torch's CPU kernels vectorise over the
    channels of a channels-last tensor instead, which is slow for a handful of them.
    """

    def __init__(self, x: Tensor) -> None:
        self.shape = tuple(x.shape)

    def flat(self, t: Tensor) -> Tensor:
        n, c, h, w = self.shape
        return t.permute(0, 2, 3, 1).reshape(n * h, w * c)  # a view of channels-last memory (else a copy)

    def unflat(self, t: Tensor) -> Tensor:
        n, c, h, w = self.shape
        return t.view(n, h, w, c).permute(0, 3, 1, 2)

    def mean(self, t: Tensor) -> Tensor:
        n, c, h, w = self.shape
        return self.sum(t) / (n * h * w)

    def sum(self, t: Tensor) -> Tensor:
        return t.sum(dim=0).view(-1, self.shape[1]).sum(dim=0)

    def expand(self, v: Tensor) -> Tensor:
        return v.repeat(self.shape[3])


def on_rows(x: Tensor) -> bool:
    """x is summed on its rows: a channels-last 4-D tensor of at most ROWS_MAX_CHANNELS channels."""
    return (x.dim() == 4 and x.shape[1] <= ROWS_MAX_CHANNELS and not x.is_contiguous()
            and x.is_contiguous(memory_format=torch.channels_last))


def channel_layout(x: Tensor) -> DimsLayout | RowsLayout:
    """RowsLayout where on_rows(x), else DimsLayout."""
    return RowsLayout(x) if on_rows(x) else DimsLayout(x)


class BatchNormFunction(torch.autograd.Function):
    """Training-mode BN: apply(x, gamma, beta, eps) -> (y, batch mean, biased batch variance).

    The mean and variance are returned for the running-statistics update and
    are not differentiable; only y carries a gradient. The sums run in x's
    channel_layout (the same formulas either way); y has x's layout.

    Backward (one channel; sums over its M elements; g = dL/dy):
        dbeta  = sum g
        dgamma = sum g * x_hat
        dx_hat = gamma * g
    x_hat depends on x directly and through mu and var (inv = 1/sqrt(var + eps)):
        dvar = sum dx_hat * (x - mu) * (-1/2) inv^3
        dmu  = -inv * sum dx_hat          (the dvar * d var/d mu term is 0: sum (x - mu) = 0)
        dx   = dx_hat * inv + dvar * 2 (x - mu) / M + dmu / M
    Writing (x - mu) = x_hat / inv, this collapses to
        dx   = inv / M * (M dx_hat - sum dx_hat - x_hat * sum dx_hat * x_hat)
             = gamma * inv / M * (M g - dbeta - x_hat * dgamma).
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, eps: float):
        layout = channel_layout(x)
        x2 = layout.flat(x)
        mean = layout.mean(x2)
        xc = x2 - layout.expand(mean)
        var = layout.mean(xc * xc)  # biased: divides by M
        inv_std = torch.rsqrt(var + eps)
        x_hat = xc.mul_(layout.expand(inv_std))  # xc is ours: normalised in place
        y = torch.addcmul(layout.expand(bias), x_hat, layout.expand(weight))
        ctx.save_for_backward(x_hat, inv_std, weight)
        ctx.layout = layout
        ctx.mark_non_differentiable(mean, var)
        return layout.unflat(y), mean, var

    @staticmethod
    @once_differentiable  # the backward is not itself differentiated (no double backward)
    def backward(ctx, grad_y: Tensor, _grad_mean, _grad_var):
        return batch_norm_backward(ctx, grad_y)


def batch_norm_backward(ctx, grad_y: Tensor, *, variance_path: bool = True):
    """BatchNormFunction's gradients; variance_path=False drops dx's - x_hat * dgamma term (a classic bug,
    which the gradient check must catch: bnlab/analyses/gradient_check)."""
    x_hat, inv_std, weight = ctx.saved_tensors
    layout = ctx.layout
    g = layout.flat(grad_y)
    m = x_hat.numel() // inv_std.numel()
    dbeta = layout.sum(g)
    dgamma = layout.sum(g * x_hat)
    dx = None
    if ctx.needs_input_grad[0]:
        # dx = a (M g - dbeta - x_hat dgamma) with a = gamma inv / M, as two passes over the tensors
        a = weight * inv_std / m
        dx = torch.addcmul(layout.expand(-a * dbeta), g, layout.expand(a * m))
        if variance_path:
            dx.addcmul_(x_hat, layout.expand(-a * dgamma))
        dx = layout.unflat(dx)
    return (
        dx,
        dgamma if ctx.needs_input_grad[1] else None,
        dbeta if ctx.needs_input_grad[2] else None,
        None,
    )


def batch_norm_train(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor, Tensor]:
    """BatchNormFunction.apply: (y, batch mean, biased batch variance)."""
    return BatchNormFunction.apply(x, weight, bias, eps)


class _BnlabBatchNorm(nn.Module):
    """Shared body of the 1d/2d modules: torch.nn.BatchNorm's attributes and running-stat rule.

    Training: batch statistics through BatchNormFunction; running_mean/var
    move towards the batch mean and the UNBIASED batch variance,
    r <- (1 - momentum) r + momentum * stat, or with momentum=None their
    cumulative average (factor 1/num_batches_tracked), as torch does.
    Eval: the running statistics, with plain (autograd-differentiated) ops.
    """

    _valid_dims: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 device=None, dtype=None) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.empty(num_features, **factory))
        self.bias = nn.Parameter(torch.empty(num_features, **factory))
        self.register_buffer("running_mean", torch.zeros(num_features, **factory))
        self.register_buffer("running_var", torch.ones(num_features, **factory))
        self.register_buffer("num_batches_tracked",
                             torch.tensor(0, dtype=torch.long, device=device))
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        self.running_mean.zero_()
        self.running_var.fill_(1)
        self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"

    def _check_input(self, x: Tensor) -> None:
        if x.dim() not in self._valid_dims:
            raise ValueError(f"{type(self).__name__}: expected {' or '.join(f'{d}D' for d in self._valid_dims)} "
                             f"input, got {x.dim()}D")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: expected {self.num_features} channels, got {x.shape[1]}")

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        return normalise_training(self, x) if self.training else normalise_eval(self, x)


def normalise_training(bn: nn.Module, x: Tensor) -> Tensor:
    """bn(x) in training mode through BatchNormFunction, and bn's running statistics updated as torch does.

    bn has torch's BatchNorm attributes: weight, bias, eps, momentum, running_mean, running_var,
    num_batches_tracked (a _BnlabBatchNorm, or a torch BatchNorm that computes here on the CPU).
    """
    m = x.numel() // x.shape[1]
    if m == 1:  # same refusal as torch: a variance of one value is meaningless
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {tuple(x.shape)}")
    y, mean, var = batch_norm_train(x, bn.weight, bn.bias, bn.eps)
    with torch.no_grad():
        bn.num_batches_tracked.add_(1)
        # momentum=None: a tensor factor, so no .item() (models are dry-run on the meta device)
        factor = 1.0 / bn.num_batches_tracked.double() if bn.momentum is None else bn.momentum
        bn.running_mean.mul_(1 - factor).add_(mean * factor)
        bn.running_var.mul_(1 - factor).add_(var * (m / (m - 1)) * factor)
    return y


def normalise_eval(bn: nn.Module, x: Tensor) -> Tensor:
    """bn(x) in eval mode: the running statistics, with plain (autograd-differentiated) ops in x's channel_layout."""
    layout = channel_layout(x)
    inv_std = torch.rsqrt(bn.running_var + bn.eps)
    y = (layout.flat(x) - layout.expand(bn.running_mean)) * layout.expand(inv_std * bn.weight) \
        + layout.expand(bn.bias)
    return layout.unflat(y)


class BnlabBatchNorm1d(_BnlabBatchNorm):
    """Drop-in for torch.nn.BatchNorm1d: inputs (N, C) or (N, C, L), statistics over N (and L)."""

    _valid_dims = (2, 3)


class BnlabBatchNorm2d(_BnlabBatchNorm):
    """Drop-in for torch.nn.BatchNorm2d: inputs (N, C, H, W), statistics over N, H, W."""

    _valid_dims = (4,)


def bnlab_batch_norm(num_features: int, dims: int) -> nn.Module:
    """Norm factory for layers.NORM_FACTORIES: (num_features, dims) -> BnlabBatchNorm1d/2d."""
    return BnlabBatchNorm1d(num_features) if dims == 1 else BnlabBatchNorm2d(num_features)
