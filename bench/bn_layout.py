"""Batch norm on channels-last inputs on the CPU: torch's BatchNorm2d as it is, against bnlab's
PlanarBatchNorm2d (the same BN on a planar copy), in a whole training step of each conv net bnlab
trains on a CPU (LeNet-5, the 16-32-64 CNN, the 2-conv CNN), 1 thread, batch 128, Adam.

The two variants alternate (A/B) over --repeats rounds of --steps steps each, after a warm-up;
the table gives the median milliseconds per step and the ratio. Models and inputs are channels-last,
as bnlab's trainer lays out conv nets (bnlab/train/tensors.py).

    .venv/bin/python bench/bn_layout.py [--repeats 5] [--steps 60] [--default-malloc]

Freed memory is kept between steps as a run keeps it (bnlab.train.allocator); --default-malloc measures
with glibc's default instead, as this benchmark did before runs kept it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from bnlab.models import create_model
from bnlab.models.layers import PlanarBatchNorm2d
from bnlab.train.allocator import keep_freed_memory

MODELS = {
    "lenet5": dict(name="lenet5", input_shape=(1, 28, 28)),
    "cnn 16-32-64": dict(name="cnn", input_shape=(1, 28, 28), widths=[16, 32, 64, 128, 64]),
    "cnn2": dict(name="cnn2", input_shape=(1, 28, 28)),
}


def build(kind: dict, planar: bool) -> nn.Module:
    torch.manual_seed(0)
    model = create_model(kind["name"], input_shape=kind["input_shape"], num_classes=10, bn="hidden",
                         widths=kind.get("widths"))
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.BatchNorm2d) and (type(child) is PlanarBatchNorm2d) != planar:
                swap = (PlanarBatchNorm2d if planar else nn.BatchNorm2d)(child.num_features)
                swap.load_state_dict(child.state_dict())
                setattr(module, child_name, swap)
    return model.to(memory_format=torch.channels_last)


def ms_per_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(5):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--default-malloc", action="store_true", help="leave glibc's malloc as it is")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if not args.default_malloc:
        keep_freed_memory()
    print(f"{'model':<14} {'torch BN ms':>12} {'planar BN ms':>13} {'ratio':>6}")
    for label, kind in MODELS.items():
        x = torch.randn(128, *kind["input_shape"]).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (128,))
        times = {False: [], True: []}
        for _ in range(args.repeats):
            for planar in (False, True):
                times[planar].append(ms_per_step(build(kind, planar), x, y, args.steps))
        a, b = statistics.median(times[False]), statistics.median(times[True])
        print(f"{label:<14} {a:>12.2f} {b:>13.2f} {b / a:>6.2f}")


if __name__ == "__main__":
    main()
