"""A k-layer MLP with batch norm, forward and backward written out by hand (seed 001 s1): no autograd.

The network is bnlab's `mlp` model with `bn: hidden` and `activation: relu`
(models/mlp.py, models/layers.py), in training mode. Rows are samples, X is
(n, D) with the image flattened; for each hidden layer l = 1 .. k-1:

    S_l  = H_{l-1} W_l^T [+ b_l]                       (n, m_l);  H_0 = X
    mu_l = 1/n sum_i S_l[i]      var_l = 1/n sum_i (S_l[i] - mu_l)^2   (biased, as BN in training mode)
    Shat = (S_l - mu_l) / sqrt(var_l + eps)            eps = the BN layer's (1e-5)
    T_l  = gamma_l * Shat + beta_l                     BN before the nonlinearity
    H_l  = max(0, T_l)
and the output layer S_k = H_{k-1} W_k^T + b_k, P = softmax(S_k), and the cost

    J = -1/n sum_i log P[i, y_i] + lambda * sum_l ||W_l||^2     (the L2 term on the weights only).

bnlab's hidden Linear layers have no bias under BN (BN subtracts the batch
mean, so a bias cancels, and beta takes its role). `hidden_bias=True` adds
the DD2424 assignment's b_1 .. b_{k-1} (seed 001's network has them) as zeros:
the function is unchanged, and their gradient is 0 analytically.

Backward, G = dJ/d(the current layer's output) as an (n, m) matrix:

    G       = (P - Y) / n                              Y one-hot
    dW_k    = G^T H_{k-1} + 2 lambda W_k               db_k = G^T 1
    G       = G W_k                                     then per hidden layer, top down:
    G       = G * 1[T_l > 0]                            ReLU
    dgamma  = sum_i G * Shat      dbeta = sum_i G      (sums over the batch)
    G       = BN backward of dShat = G * gamma         (Ioffe & Szegedy 2015, section 3):
        dvar = sum_i dShat * (S - mu) * (-1/2) (var + eps)^(-3/2)
        dmu  = -sum_i dShat / sqrt(var + eps) + dvar * (-2/n) sum_i (S - mu)
        dS   = dShat / sqrt(var + eps) + dvar * 2 (S - mu) / n + dmu / n
    dW_l    = G^T H_{l-1} + 2 lambda W_l               db_l = G^T 1 (hidden_bias only)
    G       = G W_l                                     (not needed below layer 1)

Parameters are a dict "W1", ["b1",] "gamma1", "beta1", ..., "Wk", "bk" of
float64 tensors, W_l of shape (m_l, m_{l-1}) as in torch.nn.Linear.

    params, eps = params_from_model(model)             # an mlp with bn: hidden, relu
    loss, cache = forward(params, x, y, eps)
    grads = backward(params, cache)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bnlab.models.layers import BN_KIND_ATTR

# The BN backward's variants: the right one, and one with a classic bug for the check to catch.
BN_BACKWARD_VARIANTS = ("correct", "no_mean_term")


@dataclass
class HiddenCache:
    """What the backward of one hidden layer needs from its forward."""

    h_in: Tensor  # H_{l-1}, the layer's input (n, m_{l-1})
    centred: Tensor  # S - mu (n, m)
    var: Tensor  # biased batch variance (m,)
    s_hat: Tensor  # (S - mu) / sqrt(var + eps)
    t: Tensor  # gamma * Shat + beta, the ReLU's input


@dataclass
class Cache:
    hidden: list[HiddenCache]
    h_last: Tensor  # the output layer's input H_{k-1}
    probs: Tensor  # softmax(S_k) (n, K)
    y: Tensor  # labels (n,)
    eps: float
    l2: float


def num_layers(params: Mapping[str, Tensor]) -> int:
    return sum(1 for name in params if name.startswith("W"))


def _check(params: Mapping[str, Tensor], x: Tensor) -> int:
    k = num_layers(params)
    need = [f"W{l}" for l in range(1, k + 1)] + [f"b{k}"]
    need += [f"{p}{l}" for l in range(1, k) for p in ("gamma", "beta")]
    missing = [name for name in need if name not in params]
    if missing or k < 1:
        raise ValueError(f"parameters missing: {missing or ['W1']}")
    bad = [name for name, p in params.items() if p.dtype != torch.float64]
    if bad or x.dtype != torch.float64:
        raise ValueError(f"the hand-written MLP runs in float64; not float64: {bad or ['x']}")
    return k


def forward(params: Mapping[str, Tensor], x: Tensor, y: Tensor, eps: float = 1e-5,
            l2: float = 0.0) -> tuple[float, Cache]:
    """The cost J (mean cross-entropy + l2 * sum ||W||^2) of a batch, and what backward needs."""
    k = _check(params, x)
    n = x.shape[0]
    h = x.reshape(n, -1)
    hidden = []
    for l in range(1, k):
        s = h @ params[f"W{l}"].T
        if f"b{l}" in params:
            s = s + params[f"b{l}"]
        mu = s.sum(dim=0) / n
        centred = s - mu
        var = (centred * centred).sum(dim=0) / n  # biased, as BN's batch statistics
        s_hat = centred / torch.sqrt(var + eps)
        t = params[f"gamma{l}"] * s_hat + params[f"beta{l}"]
        hidden.append(HiddenCache(h_in=h, centred=centred, var=var, s_hat=s_hat, t=t))
        h = torch.clamp(t, min=0.0)
    logits = h @ params[f"W{k}"].T + params[f"b{k}"]
    shifted = logits - logits.max(dim=1, keepdim=True).values  # softmax of shifted logits: no overflow
    log_z = torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))
    log_probs = shifted - log_z
    cross_entropy = -log_probs[torch.arange(n), y].sum() / n
    penalty = sum((params[f"W{l}"] ** 2).sum() for l in range(1, k + 1)) if l2 else 0.0
    loss = float(cross_entropy + l2 * penalty)
    return loss, Cache(hidden=hidden, h_last=h, probs=torch.exp(log_probs), y=y, eps=eps, l2=l2)


def bn_backward(d_s_hat: Tensor, centred: Tensor, var: Tensor, eps: float, variant: str = "correct") -> Tensor:
    """dJ/dS from dJ/dShat through Shat = (S - mu) / sqrt(var + eps), mu and var over the batch (dim 0).

    Ioffe & Szegedy's chain written out term by term: S reaches Shat directly,
    through the batch variance and through the batch mean. variant
    "no_mean_term" leaves the mean's path out (dmu / n), a bug for the check to catch.
    """
    if variant not in BN_BACKWARD_VARIANTS:
        raise ValueError(f"unknown BN backward variant {variant!r}; choose one of {', '.join(BN_BACKWARD_VARIANTS)}")
    n = centred.shape[0]
    inv_std = (var + eps) ** -0.5
    d_var = (d_s_hat * centred).sum(dim=0) * (-0.5) * inv_std ** 3
    d_mu = -(d_s_hat.sum(dim=0)) * inv_std + d_var * (-2.0 / n) * centred.sum(dim=0)
    d_s = d_s_hat * inv_std + d_var * 2.0 * centred / n
    if variant == "correct":
        d_s = d_s + d_mu / n
    return d_s


def backward(params: Mapping[str, Tensor], cache: Cache, bn_variant: str = "correct") -> dict[str, Tensor]:
    """dJ/dparam for every parameter of `params`, from forward's cache, by explicit matrix algebra."""
    k = num_layers(params)
    n = cache.probs.shape[0]
    grads: dict[str, Tensor] = {}
    onehot = torch.zeros_like(cache.probs)
    onehot[torch.arange(n), cache.y] = 1.0
    g = (cache.probs - onehot) / n  # dJ/dS_k of the mean cross-entropy
    grads[f"W{k}"] = g.T @ cache.h_last + 2.0 * cache.l2 * params[f"W{k}"]
    grads[f"b{k}"] = g.sum(dim=0)
    g = g @ params[f"W{k}"]  # dJ/dH_{k-1}
    for l in range(k - 1, 0, -1):
        c = cache.hidden[l - 1]
        g = g * (c.t > 0).to(g.dtype)  # ReLU: dJ/dT
        grads[f"gamma{l}"] = (g * c.s_hat).sum(dim=0)
        grads[f"beta{l}"] = g.sum(dim=0)
        g = bn_backward(g * params[f"gamma{l}"], c.centred, c.var, cache.eps, bn_variant)  # dJ/dS_l
        grads[f"W{l}"] = g.T @ c.h_in + 2.0 * cache.l2 * params[f"W{l}"]
        if f"b{l}" in params:
            grads[f"b{l}"] = g.sum(dim=0)
        if l > 1:
            g = g @ params[f"W{l}"]  # dJ/dH_{l-1}
    return {name: grads[name] for name in params}


def loss_only(params: Mapping[str, Tensor], x: Tensor, y: Tensor, eps: float = 1e-5, l2: float = 0.0) -> float:
    return forward(params, x, y, eps, l2)[0]


@torch.no_grad()
def numerical_gradients(params: dict[str, Tensor], x: Tensor, y: Tensor, eps: float = 1e-5, l2: float = 0.0,
                        h: float = 1e-5, entries: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
    """Centred differences (J(p + h) - J(p - h)) / 2h of the hand-written forward (ComputeGradsNumSlow).

    Two forwards per entry. `entries` maps a parameter name to the flat
    indices to difference (the others stay NaN); every entry of a parameter
    not in it. The parameters are restored bit for bit afterwards.
    """
    out = {}
    for name, p in params.items():
        g = torch.full_like(p, float("nan"))
        flat, gflat = p.view(-1), g.view(-1)
        idx = entries[name].tolist() if entries is not None and name in entries else range(flat.numel())
        for i in idx:
            old = flat[i].item()
            flat[i] = old + h
            plus = loss_only(params, x, y, eps, l2)
            flat[i] = old - h
            minus = loss_only(params, x, y, eps, l2)
            flat[i] = old
            gflat[i] = (plus - minus) / (2 * h)
        out[name] = g
    return out


# ------------------------------------------------------------ from a bnlab model


def _blocks(model: nn.Module) -> tuple[list[tuple[nn.Linear, nn.Module]], nn.Linear]:
    """The hidden (Linear, BN) pairs and the output Linear of an mlp with bn: hidden and ReLU; else ValueError."""
    stem, features, head = (getattr(model, part, None) for part in ("stem", "features", "head"))
    if head is None or stem is None or list(features.children()):
        raise ValueError("expected bnlab's mlp model (stem, features, head)")
    if [name for name, _ in stem.named_children()] != ["flatten"]:
        raise ValueError("the hand-written MLP has no input BN and no input dropout (bn: hidden, dropout_in 0)")
    hidden, out = [], None
    for name, block in head.named_children():
        parts = dict(block.named_children())
        if name == "out":
            if list(parts) != ["linear"]:
                raise ValueError("the hand-written MLP has no dropout before the output layer")
            out = parts["linear"]
            continue
        if list(parts) != ["linear", "bn", "act"] or not isinstance(parts["act"], nn.ReLU):
            raise ValueError(f"hidden block {name}: expected Linear -> BN -> ReLU (bn: hidden, relu, no dropout), "
                             f"got {list(parts)}")
        if parts["linear"].bias is not None or getattr(parts["bn"], BN_KIND_ATTR, None) != "hidden":
            raise ValueError(f"hidden block {name}: expected a bias-free Linear and a hidden BN")
        hidden.append((parts["linear"], parts["bn"]))
    if out is None:
        raise ValueError("the model has no output layer")
    return hidden, out


def params_from_model(model: nn.Module, hidden_bias: bool = False) -> tuple[dict[str, Tensor], float]:
    """float64 copies of an mlp's parameters under the names W1, gamma1, beta1, ..., Wk, bk; and BN's eps.

    hidden_bias=True adds zero b1 .. b_{k-1} (the DD2424 parameterisation; same function).
    """
    hidden, out = _blocks(model)
    params: dict[str, Tensor] = {}
    eps = {float(bn.eps) for _, bn in hidden}
    if len(eps) > 1:
        raise ValueError(f"the BN layers have different eps: {sorted(eps)}")
    for l, (linear, bn) in enumerate(hidden, start=1):
        params[f"W{l}"] = linear.weight.detach().double().clone()
        if hidden_bias:
            params[f"b{l}"] = torch.zeros(linear.out_features, dtype=torch.float64)
        params[f"gamma{l}"] = bn.weight.detach().double().clone()
        params[f"beta{l}"] = bn.bias.detach().double().clone()
    k = len(hidden) + 1
    params[f"W{k}"] = out.weight.detach().double().clone()
    params[f"b{k}"] = out.bias.detach().double().clone()
    return params, eps.pop() if eps else 1e-5


def model_names(model: nn.Module) -> dict[str, str]:
    """Qualified parameter name of the torch model -> its name here (W1, gamma1, ...)."""
    hidden, out = _blocks(model)
    ids = {}
    for l, (linear, bn) in enumerate(hidden, start=1):
        ids[id(linear.weight)], ids[id(bn.weight)], ids[id(bn.bias)] = f"W{l}", f"gamma{l}", f"beta{l}"
    k = len(hidden) + 1
    ids[id(out.weight)], ids[id(out.bias)] = f"W{k}", f"b{k}"
    return {qualified: ids[id(p)] for qualified, p in model.named_parameters()}
