"""Fused training against one run at a time: optimizer steps per second, K runs, same total steps.

For each model and K, K runs that differ in seed and learning rate train
(a) one after another, each through bnlab.train.run.execute_run, and
(b) together as one fused group through bnlab.train.run.execute_fused,
each run for the same number of optimizer steps (one epoch on steps * batch
training images). The figure compared is the runs' own `train_seconds` (time
in optimizer steps; evaluation and file writing excluded): K * steps divided
by the summed train_seconds of (a), and by the group's train_seconds in (b).
A/B alternate within each repeat; medians over the repeats; the ratio is
fused steps/s over one-at-a-time steps/s, measured side by side in this one
process. Wall time of the whole K runs (evaluation, folders) is printed too.

    .venv/bin/python bench/fused.py                          # CPU, the default config's models
    .venv/bin/python bench/fused.py --device cuda --models full   # on a GPU: full.yaml's models too
    .venv/bin/python bench/fused.py --quick                  # K 1 and 4, 1 repeat (a smoke check)

Data: Fashion-MNIST from the Debian package (or --data-dir), prepared once in a
temporary folder; --dataset digits needs nothing. Writes bench/out/fused.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bnlab.config import load_schema, resolve_run  # noqa: E402
from bnlab.data import prepare_dataset  # noqa: E402
from bnlab.train.run import execute_fused  # noqa: E402
from bnlab.train.run import execute_run  # noqa: E402

# name -> (run parameters, optimizer steps per run on the CPU): the default config's small models
MODELS = {
    "mlp_50x50_bn": ({"model": "mlp", "widths": [50, 50], "bn": "hidden"}, 60),
    "mlp_100x100": ({"model": "mlp", "widths": [100, 100]}, 60),
    "mlp_5x256_tanh": ({"model": "mlp", "widths": [256] * 5, "activation": "tanh"}, 40),
    "cnn2": ({"model": "cnn2", "widths": "default"}, 40),
    "lenet5": ({"model": "lenet5", "widths": "default"}, 30),
    "cnn_bn": ({"model": "cnn", "widths": [16, 32, 64, 128, 64], "bn": "hidden"}, 10),
}
FULL_MODELS = {  # full.yaml's big ones (a GPU's work)
    "vgg_a_bn": ({"model": "vgg_a", "widths": "default", "bn": "hidden"}, 10),
}


def quiet(_line: str) -> None:
    pass


def specs_for(params: dict, k: int, dataset: str, steps: int, batch: int):
    defaults = {name: p["default"] for name, p in load_schema()["$defs"]["run"]["properties"].items()}
    out = []
    for i in range(k):
        run = {**defaults, **params, "dataset": dataset, "batch_size": batch, "epochs": 1, "evals_per_epoch": 1,
               "eval_size": 500, "train_subset": steps * batch, "seed": i, "lr": 1e-3 * (1 + 0.25 * i)}
        out.append(resolve_run(run))
    return out


def measure(specs, data, folder: Path, device: str, fused: bool) -> tuple[float, float]:
    """(train_seconds, wall seconds) of the K runs, one at a time or fused."""
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    dirs = [folder / str(i) for i in range(len(specs))]
    if fused:  # K = 1 too: a group of one shows what the fused machinery itself costs
        metrics = execute_fused(specs, data, dirs, device=device, log=quiet)
        # the group's time: a member's own train_seconds is its share of it (the group's / K)
        train = metrics[0]["fused"]["group_train_seconds"]
    else:
        train = sum(execute_run(s, data, d, device=device, log=quiet)["train_seconds"] for s, d in zip(specs, dirs))
    return train, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", default="default", help="default, full (adds full.yaml's), or names, comma-separated")
    ap.add_argument("--ks", default="1,4,16")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps-scale", type=float, default=1.0, help="multiply every model's steps (GPU: more)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--dataset", default="fashion_mnist")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "fused.json"))
    args = ap.parse_args()
    if args.quick:
        args.ks, args.repeats = "1,4", 1
    table = dict(MODELS)
    if args.models == "full":
        table.update(FULL_MODELS)
    elif args.models != "default":
        everything = {**MODELS, **FULL_MODELS}
        table = {name: everything[name] for name in args.models.split(",")}
    torch.set_num_threads(1)
    ks = [int(k) for k in args.ks.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bnlab_fused_bench_"))
    data = work / f"{args.dataset}.pt"
    prepare_dataset(args.dataset, data, data_dir=args.data_dir, val_size=5000 if args.dataset != "digits" else 300,
                    split_seed=0, log=quiet)
    rows = []
    print(f"device {args.device}; {args.repeats} repeats, medians; steps/s = K * steps / train_seconds", flush=True)
    print(f"{'model':16} {'K':>3} {'steps':>5} {'alone steps/s':>14} {'fused steps/s':>14} {'ratio':>6} "
          f"{'alone wall':>10} {'fused wall':>10}", flush=True)
    for name, (params, steps) in table.items():
        steps = max(2, round(steps * args.steps_scale))
        for k in ks:
            specs = specs_for(params, k, args.dataset, steps, args.batch)
            alone, fused, alone_wall, fused_wall = [], [], [], []
            for r in range(args.repeats):
                for is_fused in ((False, True) if r % 2 == 0 else (True, False)):  # A/B, then B/A
                    train, wall = measure(specs, data, work / f"{name}_{k}_{r}_{int(is_fused)}", args.device, is_fused)
                    (fused if is_fused else alone).append(k * steps / train)
                    (fused_wall if is_fused else alone_wall).append(wall)
            row = {"model": name, "k": k, "steps_per_run": steps, "alone_steps_per_s": statistics.median(alone),
                   "fused_steps_per_s": statistics.median(fused), "alone_wall_s": statistics.median(alone_wall),
                   "fused_wall_s": statistics.median(fused_wall), "alone_all": alone, "fused_all": fused}
            row["ratio"] = row["fused_steps_per_s"] / row["alone_steps_per_s"]
            rows.append(row)
            print(f"{name:16} {k:>3} {steps:>5} {row['alone_steps_per_s']:>14.1f} {row['fused_steps_per_s']:>14.1f} "
                  f"{row['ratio']:>6.2f} {row['alone_wall_s']:>9.1f}s {row['fused_wall_s']:>9.1f}s", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": args.device, "torch": torch.__version__, "machine": platform.machine(),
                               "cpu_threads": 1, "rows": rows,
                               "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
