"""bnlab's own optimizer, and the table of optimizers a run may name.

`bnlab_sgd` is stochastic gradient descent with heavy-ball momentum and L2
weight decay written out as a torch.optim.Optimizer subclass, in the
convention torch.optim.SGD uses (so the two can be checked step for step):

    g  = grad + weight_decay * p
    v  = momentum * v + g            (v = g at the first step)
    p  = p - lr * v

Seed 004 section 1 asks to try optimizers; one written here shows what an
optimizer is: a rule applied to each parameter from its gradient and a
little state, nothing more. tests/test_optimizers.py checks it against
torch.optim.SGD on the same steps.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class BnlabSGD(torch.optim.Optimizer):
    """SGD with momentum and weight decay, the update above; lr may be changed per step (param_groups)."""

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"lr, momentum and weight_decay must be >= 0, got {lr}, {momentum}, {weight_decay}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad if wd == 0 else p.grad.add(p, alpha=wd)
                if mu != 0:
                    state = self.state[p]
                    if "velocity" not in state:
                        state["velocity"] = g.detach().clone()
                    else:
                        state["velocity"].mul_(mu).add_(g)
                    g = state["velocity"]
                p.add_(g, alpha=-lr)
        return loss


def make_optimizer(spec, params) -> torch.optim.Optimizer:
    """The run's optimizer: adam, adamw, sgd (torch's) or bnlab_sgd (BnlabSGD), with the spec's settings."""
    if spec.optimizer == "adam":
        # Adam with its defaults (betas 0.9/0.999), as the seeds ask. The fused kernel
        # updates every tensor in one pass: measured +10-20% steps/s on the CPU (bench/).
        return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay, fused=True)
    if spec.optimizer == "adamw":
        # decoupled weight decay (Loshchilov & Hutter 2019): weight_decay shrinks the weights apart from the
        # adaptive step, where Adam's weight_decay is an L2 term inside it
        return torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay, fused=True)
    if spec.optimizer == "sgd":
        return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum_value, weight_decay=spec.weight_decay)
    if spec.optimizer == "bnlab_sgd":
        return BnlabSGD(params, lr=spec.lr, momentum=spec.momentum_value, weight_decay=spec.weight_decay)
    raise ValueError(f"unknown optimizer '{spec.optimizer}'")
