"""Evaluation speed by batch size and memory layout: what bnlab.train.loop's eval batch is chosen from.

For each model of the default config, evaluates the same 1,000 Fashion-MNIST-shaped
images (random, since only speed is measured) under torch.inference_mode in eval
mode, with 1 torch thread (as execution.threads_per_run: 1 trains), at several
evaluation batch sizes, in contiguous (NCHW) and channels-last layout for the
conv nets. Prints the median milliseconds per 1,000 images over --repeats
measurements, each after a warm-up pass.

    .venv/bin/python bench/eval_batch.py [--repeats 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bnlab.models import create_model
from bnlab.train.evaluate import evaluate

MODELS = {  # the default config's models, as its studies build them
    "mlp 5x256 tanh": dict(model="mlp", widths=[256] * 5, activation="tanh"),
    "mlp 1024-512 bn": dict(model="mlp", widths=[1024, 512], bn="hidden"),
    "lenet5 bn": dict(model="lenet5", bn="hidden"),
    "cnn bn": dict(model="cnn", bn="hidden"),
    "cnn2": dict(model="cnn2"),
}
BATCHES = (64, 128, 256, 500, 1000)


def build(spec: dict) -> torch.nn.Module:
    kw = dict(bn="none", bn_impl="torch", activation="relu", dropout_in=0.0, dropout_hidden=0.0,
              init="default", init_scale=None, widths=None)
    kw.update({k: v for k, v in spec.items() if k != "model"})
    return create_model(spec["model"], input_shape=(1, 28, 28), num_classes=10, **kw)


def time_eval(model, x, y, batch, repeats) -> float:
    evaluate(model, x, y, batch)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        evaluate(model, x, y, batch)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times) * 1000 / len(x)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(1000, 1, 28, 28)
    y = torch.randint(0, 10, (1000,))
    print(f"ms per 1,000 images, median of {args.repeats}, {args.threads} thread(s)")
    print(f"{'model':18s} {'layout':14s} " + " ".join(f"{'b' + str(b):>8s}" for b in BATCHES))
    for name, spec in MODELS.items():
        model = build(spec).eval()
        conv = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
        layouts = [("contiguous", torch.contiguous_format)] + ([("channels_last", torch.channels_last)] if conv else [])
        for layout, fmt in layouts:
            m = model.to(memory_format=fmt)
            xx = x.contiguous(memory_format=fmt)
            ms = [time_eval(m, xx, y, b, args.repeats) for b in BATCHES]
            best = BATCHES[ms.index(min(ms))]
            print(f"{name:18s} {layout:14s} " + " ".join(f"{v:8.1f}" for v in ms) + f"   fastest b{best}")


if __name__ == "__main__":
    main()
