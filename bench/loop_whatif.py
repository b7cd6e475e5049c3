"""What-if timings for bnlab's train_loop: candidate fixes measured without editing bnlab/.

Every variant runs bnlab.train.loop.train_loop itself (or a patched copy of loop.py given
with --patched-loop) on the same prepared Fashion-MNIST tensors, 2 threads and
deterministic algorithms on (as execute_run), and reports LoopResult.train_seconds:

  baseline        Adam as bnlab.train.run.make_optimizer builds it (for-loop implementation on CPU)
  adam-foreach    torch.optim.Adam(..., foreach=True)
  adam-fused      torch.optim.Adam(..., fused=True)   (fused CPU kernel, torch >= 2.4)
  channels-last   model and training tensor in torch.channels_last (conv models only)
  fused+cl        both of the above
  patched         the loop from --patched-loop with make_optimizer's Adam (only when given)
  patched+fused   the patched loop with fused Adam

Usage: .venv/bin/python bench/loop_whatif.py [--workloads lenet5,mlp] [--repeats 3] [--patched-loop FILE]
Variants run round-robin within each repeat; one warm-up round is not counted.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import trainer_vs_textbook as tvt  # noqa: E402

from bnlab.data import load_prepared, prepare_dataset  # noqa: E402
from bnlab.train.loop import train_loop  # noqa: E402
from bnlab.train.run import make_optimizer  # noqa: E402
from bnlab.train.tensors import device_splits  # noqa: E402


def load_loop(path: Path):
    spec = importlib.util.spec_from_file_location("patched_loop", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod.train_loop


def once(spec, data, splits, splits_cl, variant: str, patched) -> float:
    torch.manual_seed(spec.seed)
    model = tvt.build_model(spec, data.input_shape, data.num_classes)
    cl = variant in ("channels-last", "fused+cl")
    if cl:
        model = model.to(memory_format=torch.channels_last)
    if variant in ("adam-fused", "fused+cl", "patched+fused"):
        opt = torch.optim.Adam(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay, fused=True)
    elif variant == "adam-foreach":
        opt = torch.optim.Adam(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay, foreach=True)
    else:
        opt = make_optimizer(spec, model.parameters())
    loop = patched if variant.startswith("patched") else train_loop
    r = loop(model, opt, splits_cl if cl else splits, epochs=spec.epochs, batch_size=spec.batch_size,
             evals_per_epoch=1, order_seed=spec.seed, log=tvt.quiet, **tvt.loop_kwargs(spec, len(splits.train_x)))
    return r.train_seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="what-if timings of bnlab's train_loop")
    ap.add_argument("--data-dir", type=Path, default=tvt.DEFAULT_DATA_DIR)
    ap.add_argument("--workloads", default="lenet5,mlp")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=tvt.BNLAB_THREADS)
    ap.add_argument("--patched-loop", type=Path, default=None, help="a patched copy of bnlab/train/loop.py")
    ap.add_argument("--quiet-threshold", type=float, default=0.10)
    ap.add_argument("--out", type=Path, default=tvt.REPO / "bench" / "out" / "loop_whatif.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    patched = load_loop(args.patched_loop) if args.patched_loop else None
    with tempfile.TemporaryDirectory(prefix="bnlab-whatif-") as tmp:
        path = Path(tmp) / "fm.pt"
        prepare_dataset("fashion_mnist", path, data_dir=args.data_dir, val_size=tvt.VAL_SIZE, log=tvt.quiet)
        data = load_prepared(path)
    out = {"threads": args.threads, "repeats": args.repeats, "torch": torch.__version__,
           "patched_loop": str(args.patched_loop) if args.patched_loop else None, "workloads": {}}
    for name in args.workloads.split(","):
        spec = tvt.run_spec(name, 1, 0)
        splits = device_splits(data, train_subset=0, normalize=True, device=torch.device("cpu"))
        conv = spec.model != "mlp"
        splits_cl = None
        if conv:
            splits_cl = device_splits(data, train_subset=0, normalize=True, device=torch.device("cpu"))
            splits_cl.train_x = splits_cl.train_x.contiguous(memory_format=torch.channels_last)
        variants = ["baseline", "adam-foreach", "adam-fused"] + (["channels-last", "fused+cl"] if conv else [])
        if patched:
            variants += ["patched", "patched+fused"]
        steps = len(splits.train_x) // spec.batch_size
        times = {v: [] for v in variants}
        others = {v: [] for v in variants}
        for rep in range(args.repeats + 1):
            for v in variants:
                for attempt in range(4):
                    if args.quiet_threshold > 0:
                        tvt.wait_for_quiet(args.quiet_threshold, 900.0)
                    before = tvt.cpu_snapshot()
                    t = once(spec, data, splits, splits_cl, v, patched)
                    share = tvt.foreign_share(before, tvt.cpu_snapshot()) or 0.0
                    if share <= 0.15 or args.quiet_threshold <= 0:
                        break
                if rep:
                    times[v].append(t)
                    others[v].append(share)
        med = {v: statistics.median(ts) for v, ts in times.items()}
        print(f"\n[{name}] {steps} steps, {args.threads} threads, train_seconds medians of {args.repeats}")
        print(f"  {'variant':14s} {'seconds':>8s} {'ms/step':>8s} {'steps/s':>8s} {'vs baseline':>11s} {'others':>7s}")
        for v in variants:
            print(f"  {v:14s} {med[v]:8.3f} {1000 * med[v] / steps:8.3f} {steps / med[v]:8.1f} "
                  f"{med['baseline'] / med[v]:10.2f}x {max(others[v]):7.0%}")
        out["workloads"][name] = {"steps": steps, "median_seconds": med, "all_seconds": times,
                                  "foreign_share": others,
                                  "steps_per_s": {v: steps / med[v] for v in variants}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
