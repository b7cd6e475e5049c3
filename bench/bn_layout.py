"""bnlab's CPU layer shortcuts against torch's layers, in whole training steps of the conv nets bnlab trains.

Two shortcuts (bnlab/models/layers.py), each the same function as torch's layer:
- RowsBatchNorm2d: a channels-last input of at most 8 channels is batch-normalised on its memory rows
  (bnlab_bn.RowsLayout) instead of by torch's CPU kernel, which vectorises over the channels;
- OneChannelConv2d: a one-channel input's gradient (wanted only under an input BN) as a depthwise conv.

Per workload, the model as bnlab builds it ("bnlab") against the same model with every BN a torch
nn.BatchNorm2d and every conv an nn.Conv2d ("torch"). Every measurement is a fresh 1-thread process
(in one process the second model built runs at another speed than the first), freed memory kept as a
run keeps it, batch 128, Adam, channels-last as bnlab lays out conv nets (bnlab/train/tensors.py); the
two alternate A B, B A, ...; medians of --repeats and the median of the paired ratios bnlab / torch.
Workloads without a shortcut that applies (no BN; BN of 16 channels and more) are controls: their
ratio is the benchmark's noise.

    .venv/bin/python bench/bn_layout.py [--repeats 5] [--steps 80] [--only lenet5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

WORKLOADS = {
    "lenet5 BN": dict(name="lenet5", shape=(1, 28, 28), bn="hidden"),
    "lenet5 input BN": dict(name="lenet5", shape=(1, 28, 28), bn="input+hidden"),
    "lenet5 BN + dropout": dict(name="lenet5", shape=(1, 28, 28), bn="hidden", dropout_in=0.2,
                                dropout_hidden=0.5),
    "lenet5 dropout (control)": dict(name="lenet5", shape=(1, 28, 28), dropout_in=0.2, dropout_hidden=0.5),
    "cnn2 BN": dict(name="cnn2", shape=(1, 28, 28), bn="hidden"),
    "cnn 16-32-64 BN (control)": dict(name="cnn", shape=(1, 28, 28), widths=[16, 32, 64, 128, 64], bn="hidden"),
}

CHILD = r"""
import json, statistics, sys, time
import torch
import torch.nn.functional as F
from torch import nn
from bnlab.models import create_model
from bnlab.train.allocator import keep_freed_memory
args = json.loads(sys.argv[1])
keep_freed_memory()
torch.set_num_threads(1)
torch.manual_seed(0)
kw = dict(args["workload"]); name = kw.pop("name"); shape = tuple(kw.pop("shape"))
model = create_model(name, input_shape=shape, num_classes=10, **kw)
if args["variant"] == "torch":  # the same layers, torch's own classes
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.BatchNorm2d) and type(child) is not nn.BatchNorm2d:
                swap = nn.BatchNorm2d(child.num_features)
            elif isinstance(child, nn.Conv2d) and type(child) is not nn.Conv2d:
                swap = nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size, padding=child.padding,
                                 bias=child.bias is not None)
            else:
                continue
            swap.load_state_dict(child.state_dict())
            setattr(module, child_name, swap)
model = model.to(memory_format=torch.channels_last)
x = torch.randn(128, *shape).contiguous(memory_format=torch.channels_last); y = torch.randint(0, 10, (128,))
opt = torch.optim.Adam(model.parameters(), 1e-3, fused=True)
def step():
    opt.zero_grad(set_to_none=True); F.cross_entropy(model(x), y).backward(); opt.step()
for _ in range(10):
    step()
times = []
for _ in range(args["steps"]):
    t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
print(json.dumps({"ms": 1000 * statistics.median(times)}))
"""


def measure(workload: dict, variant: str, steps: int) -> float:
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps({"workload": workload, "variant": variant,
                                                                     "steps": steps})],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["ms"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--only", default="", help="workloads whose name contains this")
    ap.add_argument("--out", default="bench/out/bn_layout.json")
    args = ap.parse_args()
    chosen = {k: v for k, v in WORKLOADS.items() if args.only in k}
    rows = []
    print(f"{'workload':<28} {'torch ms':>9} {'bnlab ms':>9} {'ratio':>6}")
    for label, workload in chosen.items():
        runs = {"torch": [], "bnlab": []}
        for r in range(args.repeats):
            for variant in (("torch", "bnlab") if r % 2 == 0 else ("bnlab", "torch")):
                runs[variant].append(measure(workload, variant, args.steps))
        ms = {k: statistics.median(v) for k, v in runs.items()}
        ratio = statistics.median(b / a for a, b in zip(runs["torch"], runs["bnlab"]))
        rows.append({"workload": label, "torch_ms": ms["torch"], "bnlab_ms": ms["bnlab"], "ratio": ratio,
                     "repeats": runs})
        print(f"{label:<28} {ms['torch']:>9.2f} {ms['bnlab']:>9.2f} {ratio:>6.2f}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "steps": args.steps}, indent=1))


if __name__ == "__main__":
    main()
