"""Does torch.compile pay for bnlab's long CPU runs? LeNet-5 (the seed scale's longest runs, 20 epochs
of 430 steps) and the 1024-512 MLP, eager against torch.compile (inductor), 1 thread, batch 128, Adam,
channels-last for the conv net as bnlab trains it. Prints the compile warm-up (the first steps) and the
median ms per step after it over --repeats rounds, and the break-even: the steps a run must take before
the compiled model's saving repays its warm-up.

    .venv/bin/python bench/compile.py [--repeats 3] [--steps 100]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from bnlab.models import create_model

MODELS = {
    "lenet5": dict(name="lenet5", input_shape=(1, 28, 28), widths=None),
    "mlp 1024-512": dict(name="mlp", input_shape=(1, 28, 28), widths=[1024, 512]),
}


def timed(model, x, y, steps: int) -> tuple[float, float]:
    """(seconds of the first 3 steps, median-free ms per step of the next `steps`)."""
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    start = time.perf_counter()
    for _ in range(3):
        step()
    warm = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return warm, (time.perf_counter() - start) / steps * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=100)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"{'model':<14} {'eager ms':>9} {'compiled ms':>12} {'warm-up s':>10} {'break-even steps':>17}")
    for label, kind in MODELS.items():
        x = torch.randn(128, *kind["input_shape"])
        conv = kind["name"] != "mlp"
        if conv:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (128,))
        eager, compiled, warm = [], [], []
        for _ in range(args.repeats):
            for use_compile in (False, True):
                torch.manual_seed(0)
                model = create_model(kind["name"], input_shape=kind["input_shape"], num_classes=10, bn="hidden",
                                     widths=kind["widths"])
                if conv:
                    model = model.to(memory_format=torch.channels_last)
                if use_compile:
                    torch._dynamo.reset()  # no cache from the previous round: each run compiles afresh
                    w, ms = timed(torch.compile(model), x, y, args.steps)
                    compiled.append(ms)
                    warm.append(w)
                else:
                    eager.append(timed(model, x, y, args.steps)[1])
        e, c, w = statistics.median(eager), statistics.median(compiled), statistics.median(warm)
        even = f"{w * 1000 / (e - c):,.0f}" if e > c else "never"
        print(f"{label:<14} {e:>9.2f} {c:>12.2f} {w:>10.1f} {even:>17}")


if __name__ == "__main__":
    main()
