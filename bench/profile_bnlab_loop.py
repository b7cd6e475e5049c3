"""Where the time goes in bnlab.train.loop.train_loop: ablation timings, cProfile and torch.profiler.

Ablation: the loop's step body rebuilt piece by piece (same model, data, threads as
trainer_vs_textbook.py), each variant timed over the same steps, median of --repeats:

  core-nodet the core below with torch.use_deterministic_algorithms(False) (execute_run turns it on)
  core       batch gather (train_x[idx]) + forward + cross_entropy + zero_grad + backward + Adam step
  +gradnorm  + grad_norms[step] = _grad_norm(params)          (per-step total gradient norm)
  +lastgrad  + the output layer's gradient change ||g_t - g_{t-1}|| (torch.cat of its grads, sub,
               vector_norm, into last_changes[step]), where this bnlab version records it
  +record    + losses[step] = loss.detach(); correct[step] = (argmax == y).sum()
  +finite    + the per-step finite check (check_every = 1 on CPU: isfinite, nonzero, len)
  +lr        + step_lr.append(param_groups[0]["lr"]) and the `step in evals` test
  train_loop bnlab's train_loop itself (LoopResult.train_seconds)

Each variant waits for a quiet machine first and is measured again (up to 3 times) when other
processes used > 15% of the CPUs meanwhile ("others" column), as in trainer_vs_textbook.py.

Usage: .venv/bin/python bench/profile_bnlab_loop.py [--steps 429] [--repeats 3] [--workloads mlp,lenet5]
Writes bench/out/profile_bnlab_loop.json and prints tables.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import trainer_vs_textbook as tvt  # noqa: E402

from bnlab.data import load_prepared, prepare_dataset  # noqa: E402
from bnlab.train.loop import _grad_norm, train_loop  # noqa: E402
from bnlab.train.run import make_optimizer  # noqa: E402
from bnlab.train.tensors import device_splits  # noqa: E402

try:  # the per-step output-layer gradient change, in bnlab versions that record it
    from bnlab.train.probes import last_linear
except ImportError:
    try:  # versions before the probes moved next to the trainer
        from bnlab.train.probes import last_linear
    except ImportError:
        last_linear = None

VARIANTS = ["core-nodet", "core", "+gradnorm"] + (["+lastgrad"] if last_linear else []) + ["+record", "+finite", "+lr"]
LEVEL = {"core-nodet": 0, "core": 0, "+gradnorm": 1, "+lastgrad": 1.5, "+record": 2, "+finite": 3, "+lr": 4}


def ablation_once(spec, data, splits, level: int) -> float:
    torch.manual_seed(spec.seed)
    model = tvt.build_model(spec, data.input_shape, data.num_classes)
    opt = make_optimizer(spec, model.parameters())
    model.train()
    n, bs = len(splits.train_x), spec.batch_size
    steps = n // bs
    params = [p for p in model.parameters() if p.requires_grad]
    losses = torch.empty(steps)
    grad_norms = torch.empty(steps)
    correct = torch.empty(steps, dtype=torch.int64)
    step_lr: list[float] = []
    last_changes = torch.full((steps,), float("nan"))
    output_layer = last_linear(model) if last_linear else None
    prev_last_grad = None
    evals = {steps}
    order = torch.Generator().manual_seed(spec.seed)
    t0 = time.perf_counter()
    perm = torch.randperm(n, generator=order)
    for b in range(steps):
        idx = perm[b * bs:(b + 1) * bs]
        xb, yb = splits.train_x[idx], splits.train_y[idx]
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if level >= 1:
            grad_norms[b] = _grad_norm(params)
        if level >= 1.5 and output_layer is not None:
            last_grad = torch.cat([output_layer.weight.grad.flatten()]
                                  + ([output_layer.bias.grad.flatten()] if output_layer.bias is not None else []))
            if prev_last_grad is not None:
                last_changes[b] = torch.linalg.vector_norm(last_grad - prev_last_grad)
            prev_last_grad = last_grad
        opt.step()
        if level >= 2:
            losses[b] = loss.detach()
            correct[b] = (logits.argmax(dim=1) == yb).sum()
        if level >= 3:
            window = losses[b:b + 1]
            bad = (~torch.isfinite(window)).nonzero()
            if len(bad):
                raise RuntimeError("diverged")
        if level >= 4:
            step_lr.append(opt.param_groups[0]["lr"])
            _ = (b + 1) in evals
    return time.perf_counter() - t0


def train_loop_once(spec, data, splits, profiler=None) -> float:
    torch.manual_seed(spec.seed)
    model = tvt.build_model(spec, data.input_shape, data.num_classes)
    opt = make_optimizer(spec, model.parameters())
    if profiler is None:
        r = train_loop(model, opt, splits, epochs=1, batch_size=spec.batch_size, evals_per_epoch=1,
                       order_seed=spec.seed, log=tvt.quiet, **tvt.loop_kwargs(spec, len(splits.train_x)))
    else:
        with profiler:
            r = train_loop(model, opt, splits, epochs=1, batch_size=spec.batch_size, evals_per_epoch=1,
                           order_seed=spec.seed, log=tvt.quiet, **tvt.loop_kwargs(spec, len(splits.train_x)))
    return r.train_seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="profile bnlab's train_loop step by step")
    ap.add_argument("--data-dir", type=Path, default=tvt.DEFAULT_DATA_DIR)
    ap.add_argument("--steps", type=int, default=429, help="steps per timed run (one epoch of steps*128 images)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workloads", default="mlp,lenet5")
    ap.add_argument("--quiet-threshold", type=float, default=0.10,
                    help="wait until other processes use less than this share of the CPUs (0 = no wait)")
    ap.add_argument("--no-profilers", action="store_true", help="ablation only")
    ap.add_argument("--out", type=Path, default=tvt.REPO / "bench" / "out" / "profile_bnlab_loop.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(tvt.BNLAB_THREADS)
    torch.use_deterministic_algorithms(True, warn_only=True)  # as execute_run
    train_subset = 0 if args.steps == 429 else args.steps * tvt.BATCH_SIZE
    out: dict = {"steps": args.steps, "repeats": args.repeats, "threads": torch.get_num_threads(),
                 "torch": torch.__version__, "load_at_start": tvt.load_now(), "workloads": {}}
    with tempfile.TemporaryDirectory(prefix="bnlab-prof-") as tmp:
        path = Path(tmp) / "fm.pt"
        prepare_dataset("fashion_mnist", path, data_dir=args.data_dir, val_size=tvt.VAL_SIZE, log=tvt.quiet)
        data = load_prepared(path)
    for name in args.workloads.split(","):
        spec = tvt.run_spec(name, 1, train_subset)
        splits = device_splits(data, train_subset=spec.train_subset, normalize=True, device=torch.device("cpu"))
        steps = len(splits.train_x) // spec.batch_size
        names = VARIANTS + ["train_loop"]
        times: dict[str, list[float]] = {v: [] for v in names}
        others: dict[str, list[float]] = {v: [] for v in names}
        for rep in range(args.repeats + 1):  # rep 0: warm-up
            for v in names:
                for attempt in range(4):  # measure again when other processes used the CPUs
                    if args.quiet_threshold > 0:
                        tvt.wait_for_quiet(args.quiet_threshold, 900.0)
                    torch.use_deterministic_algorithms(v != "core-nodet", warn_only=True)
                    before = tvt.cpu_snapshot()
                    t = (train_loop_once(spec, data, splits) if v == "train_loop"
                         else ablation_once(spec, data, splits, LEVEL[v]))
                    share = tvt.foreign_share(before, tvt.cpu_snapshot()) or 0.0
                    if share <= 0.15 or args.quiet_threshold <= 0:
                        break
                if rep:
                    times[v].append(t)
                    others[v].append(share)
        torch.use_deterministic_algorithms(True, warn_only=True)
        med = {v: statistics.median(ts) for v, ts in times.items()}
        print(f"\n[{name}] {steps} steps, {torch.get_num_threads()} threads, medians of {args.repeats}")
        print(f"  {'variant':12s} {'seconds':>8s} {'ms/step':>8s} {'steps/s':>8s} "
              f"{'delta ms/step':>14s} {'others':>7s}")
        prev = None
        for v in names:
            ms = 1000 * med[v] / steps
            delta = "" if prev is None else f"{ms - prev:+.3f}"
            print(f"  {v:12s} {med[v]:8.3f} {ms:8.3f} {steps / med[v]:8.1f} {delta:>14s} {max(others[v]):7.0%}")
            prev = ms
        entry = {"steps": steps, "median_seconds": med, "all_seconds": times, "foreign_share": others,
                 "ms_per_step": {v: 1000 * med[v] / steps for v in med}}

        if not args.no_profilers:
            pr = cProfile.Profile()
            pr.enable()
            train_loop_once(spec, data, splits)
            pr.disable()
            s = io.StringIO()
            pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(18)
            entry["cprofile_tottime"] = s.getvalue()
            print(f"\n[{name}] cProfile of train_loop (sorted by tottime):")
            print("\n".join(s.getvalue().splitlines()[:40]))

            prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            train_loop_once(spec, data, splits, profiler=prof)
            table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
            entry["torch_profiler_self_cpu"] = table
            print(f"\n[{name}] torch.profiler of train_loop (sorted by self CPU time):")
            print(table)
        out["workloads"][name] = entry
    out["load_at_end"] = tvt.load_now()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
