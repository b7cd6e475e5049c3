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
    return v.reshape(1, -1, *([1] * (x.dim() - 2)))


class BatchNormFunction(torch.autograd.Function):
    """Training-mode BN: apply(x, gamma, beta, eps) -> (y, batch mean, biased batch variance).

    The mean and variance are returned for the running-statistics update and
    are not differentiable; only y carries a gradient.

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
        dims = _reduce_dims(x)
        mean = x.mean(dim=dims)
        xc = x - _per_channel(mean, x)
        var = (xc * xc).mean(dim=dims)  # biased: divides by M
        inv_std = torch.rsqrt(var + eps)
        x_hat = xc * _per_channel(inv_std, x)
        y = x_hat * _per_channel(weight, x) + _per_channel(bias, x)
        ctx.save_for_backward(x_hat, inv_std, weight)
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    @once_differentiable  # the backward is not itself differentiated (no double backward)
    def backward(ctx, grad_y: Tensor, _grad_mean, _grad_var):
        x_hat, inv_std, weight = ctx.saved_tensors
        dims = _reduce_dims(x_hat)
        m = x_hat.numel() // x_hat.shape[1]
        dbeta = grad_y.sum(dim=dims)
        dgamma = (grad_y * x_hat).sum(dim=dims)
        dx = None
        if ctx.needs_input_grad[0]:
            scale = _per_channel(weight * inv_std / m, x_hat)
            dx = scale * (m * grad_y - _per_channel(dbeta, x_hat) - x_hat * _per_channel(dgamma, x_hat))
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
        if not self.training:
            inv_std = torch.rsqrt(self.running_var + self.eps)
            return ((x - _per_channel(self.running_mean, x)) * _per_channel(inv_std * self.weight, x)
                    + _per_channel(self.bias, x))

        m = x.numel() // x.shape[1]
        if m == 1:  # same refusal as torch: a variance of one value is meaningless
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {tuple(x.shape)}")
        y, mean, var = batch_norm_train(x, self.weight, self.bias, self.eps)
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            # momentum=None: a tensor factor, so no .item() (models are dry-run on the meta device)
            factor = 1.0 / self.num_batches_tracked.double() if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - factor).add_(mean * factor)
            self.running_var.mul_(1 - factor).add_(var * (m / (m - 1)) * factor)
        return y


class BnlabBatchNorm1d(_BnlabBatchNorm):
    """Drop-in for torch.nn.BatchNorm1d: inputs (N, C) or (N, C, L), statistics over N (and L)."""

    _valid_dims = (2, 3)


class BnlabBatchNorm2d(_BnlabBatchNorm):
    """Drop-in for torch.nn.BatchNorm2d: inputs (N, C, H, W), statistics over N, H, W."""

    _valid_dims = (4,)


def bnlab_batch_norm(num_features: int, dims: int) -> nn.Module:
    """Norm factory for layers.NORM_FACTORIES: (num_features, dims) -> BnlabBatchNorm1d/2d."""
    return BnlabBatchNorm1d(num_features) if dims == 1 else BnlabBatchNorm2d(num_features)
