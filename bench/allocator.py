"""What keeping freed memory (bnlab.train.allocator) does to a training step: each workload's step with
glibc's default malloc behaviour and with `keep_freed_memory()`, every measurement a fresh 1-thread
process (the setting cannot be undone within one), the two alternating, medians of --repeats.

A workload is a model of the seed or quick scale at batch 128 with Adam, channels-last for conv nets as
bnlab trains them. Per workload: median ms per step and minor page faults per step, default and kept,
and the ratio kept / default (below 1 is faster).

    .venv/bin/python bench/allocator.py [--repeats 3] [--steps 60] [--only lenet5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

# name -> create_model arguments; input shape (C, H, W)
WORKLOADS = {
    "lenet5 BN": dict(name="lenet5", shape=(1, 28, 28), bn="hidden"),
    "lenet5 input BN": dict(name="lenet5", shape=(1, 28, 28), bn="input+hidden"),
    "lenet5 dropout": dict(name="lenet5", shape=(1, 28, 28), dropout_in=0.2, dropout_hidden=0.5),
    "lenet5 BN + dropout": dict(name="lenet5", shape=(1, 28, 28), bn="hidden", dropout_in=0.2,
                                dropout_hidden=0.5),
    "cnn2": dict(name="cnn2", shape=(1, 28, 28)),
    "cnn2 BN": dict(name="cnn2", shape=(1, 28, 28), bn="hidden"),
    "mlp 1024-512": dict(name="mlp", shape=(1, 28, 28), widths=[1024, 512]),
    "mlp 1024-512 BN": dict(name="mlp", shape=(1, 28, 28), widths=[1024, 512], bn="hidden"),
    "mlp 5x256 tanh": dict(name="mlp", shape=(1, 28, 28), widths=[256] * 5, activation="tanh"),
    "mlp 50-50 BN": dict(name="mlp", shape=(1, 28, 28), widths=[50, 50], bn="hidden"),
    "cnn 8-16-32-64-32 BN (CIFAR)": dict(name="cnn", shape=(3, 32, 32), widths=[8, 16, 32, 64, 32], bn="hidden"),
    "resnet 4-8-16 BN (CIFAR)": dict(name="resnet", shape=(3, 32, 32), widths=[4, 8, 16], bn="hidden"),
}

CHILD = r"""
import json, resource, statistics, sys, time
import torch
import torch.nn.functional as F
from bnlab.models import create_model
from bnlab.train.allocator import keep_freed_memory
args = json.loads(sys.argv[1])
kept = keep_freed_memory() if args["keep"] else False
torch.set_num_threads(1)
torch.manual_seed(0)
kw = dict(args["workload"]); name = kw.pop("name"); shape = tuple(kw.pop("shape"))
model = create_model(name, input_shape=shape, num_classes=10, **kw)
x = torch.randn(128, *shape); y = torch.randint(0, 10, (128,))
if any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
    model = model.to(memory_format=torch.channels_last); x = x.contiguous(memory_format=torch.channels_last)
opt = torch.optim.Adam(model.parameters(), 1e-3, fused=True)
def step():
    opt.zero_grad(set_to_none=True); F.cross_entropy(model(x), y).backward(); opt.step()
for _ in range(10):
    step()
faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
times = []
for _ in range(args["steps"]):
    t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0
print(json.dumps({"ms": 1000 * statistics.median(times), "faults": faults / args["steps"], "kept": kept}))
"""


def measure(workload: dict, keep: bool, steps: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps({"workload": workload, "keep": keep,
                                                                     "steps": steps})],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--only", default="", help="workloads whose name contains this")
    ap.add_argument("--out", default="bench/out/allocator.json")
    args = ap.parse_args()
    chosen = {k: v for k, v in WORKLOADS.items() if args.only in k}
    rows, raw = [], {}
    print(f"{'workload':<30} {'default ms':>10} {'kept ms':>8} {'ratio':>6} {'faults/step':>12} {'kept':>6}")
    for label, workload in chosen.items():
        runs = {False: [], True: []}
        for r in range(args.repeats):
            order = (False, True) if r % 2 == 0 else (True, False)  # A B, B A, ...
            for keep in order:
                runs[keep].append(measure(workload, keep, args.steps))
        if not all(m["kept"] for m in runs[True]):
            sys.exit("keep_freed_memory() did not take effect here (not glibc?): nothing to compare")
        ms = {k: statistics.median(m["ms"] for m in v) for k, v in runs.items()}
        faults = {k: statistics.median(m["faults"] for m in v) for k, v in runs.items()}
        ratio = ms[True] / ms[False]
        rows.append({"workload": label, "default_ms": ms[False], "kept_ms": ms[True], "ratio": ratio,
                     "default_faults": faults[False], "kept_faults": faults[True]})
        raw[label] = {"default": runs[False], "kept": runs[True]}
        print(f"{label:<30} {ms[False]:>10.2f} {ms[True]:>8.2f} {ratio:>6.2f} {faults[False]:>12.0f} "
              f"{faults[True]:>6.0f}")
    print(f"median ratio over workloads: {statistics.median(r['ratio'] for r in rows):.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "repeats": raw, "steps": args.steps}, indent=1))


if __name__ == "__main__":
    main()
