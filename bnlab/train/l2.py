"""The seeds' L2 term: J = loss + lambda * sum ||W||^2 over weight matrices and conv kernels.

Seed 001's cost regularises the weights only; torch's `weight_decay` decays
every parameter, biases and BN's gamma and beta included, which is a different
objective (and with Adam a different update again). bnlab adds the term's
gradient, 2 * lambda * W, to each weight's gradient after the backward pass
rather than adding the term to the loss: the same gradient of J for one
multiply-add per weight, with no extra autograd graph. The recorded training
loss stays the cross-entropy, so curves of runs with and without L2 compare;
metrics.json holds the term's value at the end (`l2_penalty`).
"""

from __future__ import annotations

import torch
from torch import nn


def l2_weights(model: nn.Module) -> list[torch.Tensor]:
    """The tensors the L2 term covers: each Linear layer's weight matrix and each Conv2d's kernel."""
    return [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)) and m.weight.requires_grad]


def add_l2_gradient(weights: list[torch.Tensor], l2: float) -> None:
    """grad(W) += 2 * l2 * W for every weight (after backward, before the optimizer step)."""
    grads = [w.grad for w in weights if w.grad is not None]
    present = [w for w in weights if w.grad is not None]
    if grads:
        with torch.no_grad():  # else the grads would join the weights' autograd graph
            torch._foreach_add_(grads, present, alpha=2.0 * l2)


def l2_penalty(weights: list[torch.Tensor], l2: float) -> float:
    """lambda * sum ||W||^2, the term's value (0.0 for lambda 0)."""
    if not l2:
        return 0.0
    with torch.no_grad():
        return float(l2 * sum(float(w.double().pow(2).sum()) for w in weights))
