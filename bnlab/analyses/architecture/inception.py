"""Inception modules (Szegedy et al. 2015, Fig. 2): naive and with dimension reduction, as real modules.

The seed's Figure 1 (its filter numbers) is not in the seed's text; the filter
numbers are the common lecture example (Stanford CS231n 2017, lecture 9, "CNN
Architectures", on a 28x28x256 input):
naive = 1x1 conv 128 | 3x3 conv 192 | 5x5 conv 96 | 3x3 max-pool stride 1
same padding, concatenated along channels; dimension reduction = the same plus
1x1 convs of 64 before the 3x3 and the 5x5 and a 1x1 conv of 64 after the pool.
Convs keep H x W ('same' padding) and are followed by ReLU, as in GoogLeNet.
Multiplies are the accounting's conv MACs summed over the module.
"""

from __future__ import annotations

from collections import OrderedDict

import pandas as pd
import torch
from torch import nn

from bnlab.models.accounting import layer_table, totals

LECTURE_FILTERS = {"1x1": 128, "3x3": 192, "5x5": 96, "reduce3x3": 64, "reduce5x5": 64, "pool_proj": 64}
SEED_INPUT: tuple[int, int, int] = (256, 32, 32)
CROSS_CHECK_INPUT: tuple[int, int, int] = (256, 28, 28)  # the lecture example's own input: a second size


def _conv(c_in: int, c_out: int, k: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict([("conv", nn.Conv2d(c_in, c_out, k, padding=k // 2)),
                                      ("relu", nn.ReLU(inplace=True))]))


class Inception(nn.Module):
    """Four parallel branches concatenated along channels; `reduce=False` is the naive module."""

    def __init__(self, in_channels: int, *, reduce: bool, filters: dict[str, int] | None = None) -> None:
        super().__init__()
        f = {**LECTURE_FILTERS, **(filters or {})}
        self.reduce = reduce
        self.branch1 = _conv(in_channels, f["1x1"], 1)
        if reduce:
            self.branch3 = nn.Sequential(_conv(in_channels, f["reduce3x3"], 1), _conv(f["reduce3x3"], f["3x3"], 3))
            self.branch5 = nn.Sequential(_conv(in_channels, f["reduce5x5"], 1), _conv(f["reduce5x5"], f["5x5"], 5))
            self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1),
                                             _conv(in_channels, f["pool_proj"], 1))
        else:
            self.branch3 = _conv(in_channels, f["3x3"], 3)
            self.branch5 = _conv(in_channels, f["5x5"], 5)
            self.branch_pool = nn.MaxPool2d(3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1)


def naive_inception(in_channels: int = 256, device: str = "meta") -> Inception:
    with torch.device(device):
        return Inception(in_channels, reduce=False)


def reduction_inception(in_channels: int = 256, device: str = "meta") -> Inception:
    with torch.device(device):
        return Inception(in_channels, reduce=True)


def output_shape(module: nn.Module, input_shape: tuple[int, int, int]) -> tuple[int, ...]:
    """(C, H, W) after the concatenation, by a forward on the module's device (meta: shapes only)."""
    device = next(module.parameters()).device
    with torch.no_grad():
        return tuple(module(torch.zeros(1, *input_shape, device=device)).shape[1:])


def inception_summary(input_shape: tuple[int, int, int] = SEED_INPUT) -> dict:
    """Both modules on input_shape: output shapes, multiplies (conv MACs), params and the saving."""
    out = {"input_shape": tuple(input_shape)}
    for key, module in (("naive", naive_inception(input_shape[0])), ("reduction", reduction_inception(input_shape[0]))):
        table = layer_table(module, input_shape, include_input=False)
        t = totals(table)
        out[key] = {"output_shape": output_shape(module, input_shape), "macs": t["macs"], "params": t["params"],
                    "weights": t["weights"], "layers": table}
    out["saving_ratio"] = out["naive"]["macs"] / out["reduction"]["macs"]
    out["saving_macs"] = out["naive"]["macs"] - out["reduction"]["macs"]
    out["saving_fraction"] = out["saving_macs"] / out["naive"]["macs"]
    return out


def inception_table(input_shape: tuple[int, int, int] = SEED_INPUT) -> pd.DataFrame:
    """One row per module (naive, reduction): output_shape, macs, weights, params."""
    s = inception_summary(input_shape)
    return pd.DataFrame([{"module": k, "output_shape": s[k]["output_shape"], "macs": s[k]["macs"],
                          "weights": s[k]["weights"], "params": s[k]["params"]} for k in ("naive", "reduction")])
