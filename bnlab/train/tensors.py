"""Dataset tensors on the training device, normalised once.

airbench-style: the whole split lives on the device as one float tensor;
a batch is an index slice of it. No DataLoader, no per-sample Python.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

from bnlab.data import PreparedData
from bnlab.data.subsets import stratified_subset


@dataclass
class Splits:
    train_x: torch.Tensor  # float32 [N, C, H, W], normalised
    train_y: torch.Tensor  # int64 [N]
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    # The fixed stratified subsets curve points evaluate (bnlab.data.subsets); None = the whole split.
    val_curve_x: torch.Tensor | None = None
    val_curve_y: torch.Tensor | None = None
    test_curve_x: torch.Tensor | None = None
    test_curve_y: torch.Tensor | None = None

    def curve(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) that a curve point of `split` ("val" or "test") evaluates."""
        x, y = getattr(self, f"{split}_curve_x"), getattr(self, f"{split}_curve_y")
        return (x, y) if x is not None else (getattr(self, f"{split}_x"), getattr(self, f"{split}_y"))

    def whole(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return getattr(self, f"{split}_x"), getattr(self, f"{split}_y")

    def curve_is_whole(self, split: str) -> bool:
        return getattr(self, f"{split}_curve_x") is None


def with_curve_subsets(splits: Splits, eval_size: int) -> Splits:
    """splits with the validation and test curve subsets of eval_size images (0 = whole splits)."""
    out = {}
    for split in ("val", "test"):
        x, y = splits.whole(split)
        if 0 < eval_size < len(x):
            idx = stratified_subset(y, eval_size).to(y.device)
            out[f"{split}_curve_x"], out[f"{split}_curve_y"] = x[idx], y[idx]
    return replace(splits, **out)


def _to_float(x_uint8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor | None, device) -> torch.Tensor:
    x = x_uint8.to(device=device).float().div_(255.0)
    if std is not None:
        # [C] -> [1, C, 1, 1] to broadcast over batch and pixels
        x.sub_(mean.to(device).view(1, -1, 1, 1)).div_(std.to(device).view(1, -1, 1, 1))
    return x


def fast_layout(model: torch.nn.Module, splits: Splits) -> tuple[torch.nn.Module, Splits]:
    """A conv net and its images in channels-last layout; anything else unchanged.

    Convolution and max-pooling run faster in this layout on the CPU (and on
    GPUs with tensor cores); the numbers are the same up to rounding.
    """
    if not any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
        return model, splits
    fmt = torch.channels_last
    images = {f.name: getattr(splits, f.name).contiguous(memory_format=fmt) for f in fields(splits)
              if f.name.endswith("_x") and getattr(splits, f.name) is not None}
    return model.to(memory_format=fmt), replace(splits, **images)


def device_splits(data: PreparedData, *, train_subset: int, normalize: bool, device: torch.device) -> Splits:
    """Train (optionally its first `train_subset` images), validation and test on `device`."""
    idx = data.train_idx if train_subset <= 0 else data.train_idx[:train_subset]
    std = data.std if normalize else None
    return Splits(
        train_x=_to_float(data.train_x[idx], data.mean, std, device),
        train_y=data.train_y[idx].to(device),
        val_x=_to_float(data.train_x[data.val_idx], data.mean, std, device),
        val_y=data.train_y[data.val_idx].to(device),
        test_x=_to_float(data.test_x, data.mean, std, device),
        test_y=data.test_y.to(device),
    )
