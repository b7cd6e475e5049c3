"""Cost of one Santurkar landscape probe (bnlab.analyses.loss_landscape.probe_step) relative to one training step.

For each model (Fashion-MNIST-sized input 1x28x28, 10 classes, batch 128):
one Adam training step (forward, cross-entropy, zero_grad, backward, step)
and one probe with 4 and with 8 step sizes, method "loop" and "vmap". The
variants are timed round-robin within each repeat (the machine is shared:
load drifts), and medians over the repeats are printed with
probe/step ratios and the implied overhead of probing every k-th step
(ratio / k of the training time).

Threads default to 1, as bnlab.train.run.execute_run uses; deterministic
algorithms on, as there. The models have no dropout, so the probe reuses the
step's p.grad (with dropout it adds one forward/backward to recompute it).

Usage (from the repository root):
    .venv/bin/python bench/probe_overhead.py [--repeats 3] [--threads 1] [--models vgg_a:none,vgg_a:hidden,cnn:none]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bnlab.analyses.loss_landscape import probe_step  # noqa: E402
from bnlab.models import count_parameters, create_model  # noqa: E402

ETAS = {4: (0.5, 1.0, 2.0, 4.0), 8: tuple(float(e) for e in torch.logspace(-1, 2, 8, base=2).tolist())}
KS = (10, 20, 50)
DEFAULT_MODELS = "vgg_a:none,vgg_a:hidden,cnn:none,cnn:hidden"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def bench_model(name: str, bn: str, repeats: int, batch: int, lr: float) -> dict:
    torch.manual_seed(0)
    model = create_model(name, input_shape=(1, 28, 28), num_classes=10, bn=bn)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x = torch.randn(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    model.train()

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    variants = {("step", 0): step}
    for n, etas in ETAS.items():
        for method in ("loop", "vmap"):
            variants[(method, n)] = (lambda m=method, e=etas: probe_step(model, x, y, lr, e, method=m))
    step()  # warm-up; leaves p.grad for the probes
    for method in ("loop", "vmap"):
        probe_step(model, x, y, lr, ETAS[4], method=method)
    times = {k: [] for k in variants}
    for r in range(repeats):
        for key, fn in variants.items():
            t = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t)
        print(f"  {name}/{bn} repeat {r + 1}/{repeats} done (load {load()})", flush=True)
    return {"model": name, "bn": bn, "params": count_parameters(model),
            **{k: statistics.median(v) for k, v in times.items()}, "raw": times}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--models", default=DEFAULT_MODELS, help="comma-separated model:bn pairs")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"{args.threads} torch thread(s), batch {args.batch}, input 1x28x28, repeats {args.repeats}")
    print(f"load average at start: {load()}")
    print(f"etas: 4 = {ETAS[4]}, 8 = {tuple(round(e, 3) for e in ETAS[8])}")
    results = []
    for pair in args.models.split(","):
        name, bn = pair.split(":")
        results.append(bench_model(name, bn, args.repeats, args.batch, args.lr))
    print(f"load average at end: {load()}")
    print("\nmedian seconds; ratio = probe / training step; overhead at k = ratio / k of training time")
    head = f"{'model':7} {'bn':7} {'params':>10} {'step s':>7} | {'probe':10} {'s':>7} {'ratio':>6} {'/eta':>5} | " \
           + " ".join(f"{'k=' + str(k):>6}" for k in KS)
    print(head)
    print("-" * len(head))
    for res in results:
        step_s = res[("step", 0)]
        for n in ETAS:
            for method in ("loop", "vmap"):
                s = res[(method, n)]
                ratio = s / step_s
                print(f"{res['model']:7} {res['bn']:7} {res['params']:>10,} {step_s:7.3f} | "
                      f"{method + ' ' + str(n) + ' eta':10} {s:7.3f} {ratio:6.2f} {ratio / n:5.2f} | "
                      + " ".join(f"{100 * ratio / k:5.1f}%" for k in KS))


if __name__ == "__main__":
    main()
