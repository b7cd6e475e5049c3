"""bnlab's trainer vs a textbook PyTorch loop, side by side, same model, same optimizer steps.

Two loops train the same model (bnlab's create_model, same seed) with Adam lr 1e-3,
batch 128, on Fashion-MNIST for the same number of optimizer steps:

* textbook: torchvision.datasets.FashionMNIST(ToTensor + Normalize) + DataLoader(batch_size=128,
  shuffle=True, num_workers=2) and the usual zero_grad / cross_entropy / backward / step loop.
  Timed from creating the DataLoader iterator (worker start-up included: a user pays it)
  to the last optimizer step; one fresh iterator per DataLoader epoch, as a plain
  `for x, y in loader` gives. Main process threads: torch's default.
* bnlab: the prepared-tensor path (prepare_dataset -> load_prepared -> device_splits ->
  train_loop), set up the way bnlab.train.run.execute_run does it, with 2 torch threads.
  Timed by LoopResult.train_seconds (optimizer steps only; evaluation excluded).

A second figure is the wall time of bnlab's execute_run end to end (load the cache,
build the model, train, evaluate at step 0 and each epoch end, write the run folder).

The machine may be shared: before each measurement the script waits until other
processes use < 10% of the CPUs (/proc/stat minus this process tree), and measures
again when they used > 15% during it (see --quiet-threshold, --redo-above, --retries).

Usage (from the repository root):
    .venv/bin/python bench/trainer_vs_textbook.py [--repeats 3] [--epochs 1] [--out FILE]
See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gzip
import inspect
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

DEFAULT_THREADS = torch.get_num_threads()  # before anything below changes it

import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from torchvision import transforms  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bnlab.config import load_schema, resolve_run  # noqa: E402
from bnlab.data import load_prepared, prepare_dataset  # noqa: E402
from bnlab.models import create_model  # noqa: E402
from bnlab.provenance import cpu_model  # noqa: E402
from bnlab.params import PARAM_NAMES, RunSpec  # noqa: E402
from bnlab.train.loop import train_loop  # noqa: E402
from bnlab.train.run import bn_snapshotter, execute_run, make_optimizer  # noqa: E402
from bnlab.train.tensors import device_splits  # noqa: E402

DEFAULT_DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_OUT = REPO / "bench" / "out" / "trainer_vs_textbook.json"
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
BNLAB_THREADS = 2
BATCH_SIZE = 128
LR = 1e-3
VAL_SIZE = 5000
NUM_WORKERS = 2
TARGETS = {"mlp": 4.0, "lenet5": 3.0}  # bnlab/textbook steps-per-second ratio asked for

# Workloads: name -> the run parameters that differ from the shared ones below.
WORKLOADS = {
    "mlp": {"model": "mlp", "widths": [256] * 5, "activation": "tanh"},
    "lenet5": {"model": "lenet5", "widths": "default", "activation": "relu"},  # relu: schema default
}
BASE_PARAMS = {
    "dataset": "fashion_mnist", "bn": "none", "init": "default", "init_scale": "default",
    "dropout_in": 0.0, "dropout_hidden": 0.0, "optimizer": "adam", "lr": LR, "momentum": 0.9,
    "weight_decay": 0.0, "batch_size": BATCH_SIZE, "train_subset": 0, "evals_per_epoch": 1,
    "normalize": True, "seed": 0,
}


def quiet(_line: str) -> None:
    pass


def load_now() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ------------------------------------------------- other processes' CPU use
# The load average counts this benchmark's own threads and loader workers too, so it
# cannot tell whether someone else was using the CPUs. Foreign CPU time is instead the
# machine's busy time (/proc/stat) minus this process's and its reaped children's.
_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_snapshot() -> tuple[float, float, float] | None:
    """(machine busy CPU s, own + children CPU s, wall s), or None off Linux."""
    try:
        with open("/proc/stat") as fh:
            f = [int(v) for v in fh.readline().split()[1:9]]
    except OSError:
        return None
    busy = (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / _HZ  # user nice system irq softirq steal
    t = os.times()
    return busy, t.user + t.system + t.children_user + t.children_system, time.perf_counter()


def foreign_share(before, after) -> float | None:
    """Share of all CPUs used by other processes between two snapshots (0..1)."""
    if before is None or after is None or after[2] <= before[2]:
        return None
    foreign = (after[0] - before[0]) - (after[1] - before[1])
    return max(0.0, foreign) / ((after[2] - before[2]) * (os.cpu_count() or 1))


def wait_for_quiet(threshold: float, max_wait: float, log=print) -> dict:
    """Sample other processes' CPU use for 1 s at a time until it is below threshold (or max_wait)."""
    t0 = time.perf_counter()
    while True:
        a = cpu_snapshot()
        time.sleep(1.0)
        share = foreign_share(a, cpu_snapshot())
        waited = time.perf_counter() - t0
        if share is None or share < threshold or waited >= max_wait:
            return {"foreign_share_before": share, "waited_s": round(waited, 1),
                    "gave_up_waiting": share is not None and share >= threshold}
        if waited < 1.5 or int(waited) % 60 == 0:
            log(f"  waiting: other processes use {share:.0%} of the CPUs (load {load_now()})")


# ------------------------------------------------------------------ data
def find_idx(data_dir: Path, name: str) -> Path:
    for candidate in (data_dir / name, data_dir / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise SystemExit(f"{data_dir}: neither {name} nor {name}.gz found (Fashion-MNIST IDX files expected)")


def torchvision_layout(data_dir: Path, root: Path) -> Path:
    """root/FashionMNIST/raw/<uncompressed IDX files>, from data_dir's .gz (or plain) files. Offline."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in IDX_FILES:
        src = find_idx(data_dir, name)
        opener = gzip.open if src.suffix == ".gz" else open
        with opener(src, "rb") as fin, open(raw / name, "wb") as fout:
            shutil.copyfileobj(fin, fout)
    return root


# ------------------------------------------------------------- workloads
def run_spec(workload: str, epochs: int, train_subset: int) -> RunSpec:
    """RunSpec via bnlab.config.resolve_run; run parameters the benchmark does not set get the
    schema's defaults (so parameters added to bnlab later need no change here)."""
    params = {**BASE_PARAMS, **WORKLOADS[workload], "epochs": epochs, "train_subset": train_subset}
    props = load_schema()["$defs"]["run"]["properties"]
    for name in PARAM_NAMES:
        if name not in params and "default" in props.get(name, {}):
            params[name] = props[name]["default"]
    return resolve_run(params, where=f"bench.{workload}")


def build_model(spec: RunSpec, input_shape, num_classes):
    """The model exactly as execute_run builds it."""
    kwargs = {}
    if hasattr(spec, "bn_impl") and "bn_impl" in inspect.signature(create_model).parameters:
        kwargs["bn_impl"] = spec.bn_impl
    return create_model(
        spec.model, input_shape=input_shape, num_classes=num_classes, bn=spec.bn,
        activation=spec.activation, dropout_in=spec.dropout_in, dropout_hidden=spec.dropout_hidden,
        init=spec.init, init_scale=spec.init_scale_value, widths=spec.widths_list, **kwargs,
    )


def loop_kwargs(spec: RunSpec, n_train: int | None = None) -> dict:
    """Keyword arguments execute_run passes to train_loop beyond the basic ones, where this
    bnlab version has them (eval_test, probes, learning-rate schedule). For the benchmark's
    runs they all mean "off" (test set at the end only, no probes, constant lr)."""
    accepted = inspect.signature(train_loop).parameters
    out = {k: getattr(spec, k) for k in ("eval_test", "probe_every") if k in accepted and hasattr(spec, k)}
    if "probe_etas" in accepted and hasattr(spec, "probe_multipliers"):
        out["probe_etas"] = spec.probe_multipliers
    if "lr_at" in accepted and n_train is not None:
        try:
            from bnlab.train.lr_policy import lr_function
        except ImportError:
            pass
        else:
            per_epoch = n_train // min(spec.batch_size, n_train)
            out["lr_at"] = lr_function(spec, per_epoch, per_epoch * spec.epochs)
    return out


def bnlab_once(spec: RunSpec, data, splits) -> dict:
    """bnlab's training loop, set up as execute_run does (threads, seed, determinism)."""
    torch.set_num_threads(BNLAB_THREADS)
    torch.manual_seed(spec.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    model = build_model(spec, data.input_shape, data.num_classes)
    try:  # bnlab versions with the channels-last layout for conv nets
        from bnlab.train.tensors import fast_layout
    except ImportError:
        pass
    else:
        model, splits = fast_layout(model, splits)
    optimizer = make_optimizer(spec, model.parameters())
    load0 = load_now()
    t0 = time.perf_counter()
    result = train_loop(model, optimizer, splits, epochs=spec.epochs, batch_size=spec.batch_size,
                        evals_per_epoch=spec.evals_per_epoch, order_seed=spec.seed, log=quiet,
                        bn_snapshot=bn_snapshotter(model), **loop_kwargs(spec, len(splits.train_x)))
    call_seconds = time.perf_counter() - t0
    torch.use_deterministic_algorithms(False)
    return {"steps": result.steps_done, "seconds": result.train_seconds,
            "loop_call_seconds": call_seconds, "status": result.status,
            "final_loss": float(result.step_loss[-1]), "threads": torch.get_num_threads(),
            "load_before": load0, "load_after": load_now()}


def textbook_once(spec: RunSpec, dataset, data, steps: int) -> dict:
    """The usual DataLoader loop for `steps` optimizer steps; worker start-up included in the time."""
    torch.set_num_threads(DEFAULT_THREADS)
    torch.use_deterministic_algorithms(False)
    torch.manual_seed(spec.seed)
    model = build_model(spec, data.input_shape, data.num_classes)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
    loader = DataLoader(dataset, batch_size=spec.batch_size, shuffle=True, num_workers=NUM_WORKERS)
    load0 = load_now()
    step, epochs_started, first_batch = 0, 0, []
    t0 = time.perf_counter()
    while step < steps:
        epochs_started += 1
        e0 = time.perf_counter()
        for i, (x, y) in enumerate(loader):
            if i == 0:
                first_batch.append(time.perf_counter() - e0)
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            step += 1
            if step == steps:
                break
    seconds = time.perf_counter() - t0  # the break above already shut the workers down
    return {"steps": step, "seconds": seconds, "first_batch_seconds": first_batch,
            "loader_epochs_started": epochs_started, "final_loss": float(loss.detach()),
            "threads": torch.get_num_threads(), "num_workers": NUM_WORKERS,
            "load_before": load0, "load_after": load_now()}


def execute_run_once(spec: RunSpec, data_path: Path, out_dir: Path) -> dict:
    load0 = load_now()
    t0 = time.perf_counter()
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        metrics = execute_run(spec, data_path, out_dir, threads=BNLAB_THREADS, device="cpu", log=quiet)
    seconds = time.perf_counter() - t0
    torch.use_deterministic_algorithms(False)
    shutil.rmtree(out_dir, ignore_errors=True)
    return {"steps": metrics["steps"], "seconds": seconds, "train_seconds": metrics["train_seconds"],
            "metrics_wall_seconds": metrics["wall_seconds"], "final_val_acc": metrics.get("final_val_acc"),
            "load_before": load0, "load_after": load_now()}


# --------------------------------------------------------------- summary
def rate_summary(reps: list[dict], batch_size: int) -> dict:
    secs = [r["seconds"] for r in reps]
    med = statistics.median(secs)
    steps = reps[0]["steps"]
    shares = [r["foreign_share"] for r in reps if r.get("foreign_share") is not None]
    return {"median_seconds": med, "min_seconds": min(secs), "max_seconds": max(secs),
            "steps": steps, "steps_per_s": steps / med, "samples_per_s": steps * batch_size / med,
            "max_foreign_share": max(shares) if shares else None}


def _share(x) -> str:
    return "?" if x is None else f"{x:.0%}"


def print_table(results: dict) -> None:
    """Medians per workload and loop; 'others' = most CPU used by other processes in any repeat."""
    rows = [("workload", "loop", "steps", "median s", "steps/s", "samples/s", "ratio", "target", "others")]
    for name, res in results["workloads"].items():
        tb, bn = res["textbook"], res["bnlab"]
        rows.append((name, "textbook", str(tb["steps"]), f"{tb['median_seconds']:.2f}",
                     f"{tb['steps_per_s']:.1f}", f"{tb['samples_per_s']:.0f}", "", "",
                     _share(tb["max_foreign_share"])))
        rows.append((name, "bnlab", str(bn["steps"]), f"{bn['median_seconds']:.2f}",
                     f"{bn['steps_per_s']:.1f}", f"{bn['samples_per_s']:.0f}",
                     f"{res['ratio_bnlab_over_textbook']:.2f}x",
                     f">={res['target_ratio']:.0f}x {'met' if res['target_met'] else 'MISSED'}",
                     _share(bn["max_foreign_share"])))
        if "execute_run" in res:
            ex = res["execute_run"]
            rows.append((name, "execute_run (wall)", str(ex["steps"]), f"{ex['median_seconds']:.2f}",
                         f"{ex['steps_per_s']:.1f}", f"{ex['samples_per_s']:.0f}",
                         f"{res['ratio_execute_run_over_textbook']:.2f}x", "", _share(ex["max_foreign_share"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for k, row in enumerate(rows):
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if k == 0:
            print("  ".join("-" * w for w in widths))


# ------------------------------------------------------------------ main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                    help="folder with the four Fashion-MNIST IDX files, .gz or not (default %(default)s)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats per loop (default 3), after 1 warm-up")
    ap.add_argument("--epochs", type=int, default=1,
                    help="epochs of bnlab's 55,000-image split; steps = epochs * 429 for both loops (default 1)")
    ap.add_argument("--steps", type=int, default=None,
                    help="quick checks: one bnlab epoch of exactly STEPS steps on the first STEPS*128 "
                         "training images (overrides --epochs)")
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help="comma list from: " + ", ".join(WORKLOADS))
    ap.add_argument("--no-execute-run", action="store_true", help="skip the execute_run end-to-end figure")
    ap.add_argument("--quiet-threshold", type=float, default=0.10,
                    help="before each measurement wait until other processes use less than this share "
                         "of the CPUs (default %(default)s; 0 = do not wait)")
    ap.add_argument("--max-wait", type=float, default=900.0,
                    help="longest wait per measurement in seconds, then measure anyway and flag it")
    ap.add_argument("--redo-above", type=float, default=0.15,
                    help="measure again when other processes used more than this share of the CPUs "
                         "during a measurement (default %(default)s)")
    ap.add_argument("--retries", type=int, default=3, help="most re-measurements per disturbed measurement")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output (default %(default)s)")
    args = ap.parse_args(argv)
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for w in workloads:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w!r}; choose from {', '.join(WORKLOADS)}")
    if args.repeats < 1 or args.epochs < 1 or (args.steps is not None and args.steps < 1):
        ap.error("--repeats, --epochs and --steps must be positive")

    epochs, train_subset = (1, args.steps * BATCH_SIZE) if args.steps else (args.epochs, 0)
    print(f"bench: torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"{os.cpu_count()} CPUs, default torch threads {DEFAULT_THREADS}, load {load_now()}", flush=True)

    with tempfile.TemporaryDirectory(prefix="bnlab-bench-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        root = torchvision_layout(args.data_dir, tmp / "torchvision")
        layout_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        data_path = tmp / "fashion_mnist.pt"
        prepare_dataset("fashion_mnist", data_path, data_dir=args.data_dir, val_size=VAL_SIZE, log=quiet)
        prepare_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        data = load_prepared(data_path)
        load_s = time.perf_counter() - t0
        mean, std = data.mean.tolist(), data.std.tolist()
        t0 = time.perf_counter()
        dataset = torchvision.datasets.FashionMNIST(
            root, train=True, download=False,
            transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)]))
        tv_dataset_s = time.perf_counter() - t0
        print(f"data: torchvision layout {layout_s:.1f}s, prepare_dataset {prepare_s:.1f}s, "
              f"load_prepared {load_s:.2f}s, FashionMNIST() {tv_dataset_s:.2f}s; "
              f"Normalize(mean={[round(m, 4) for m in mean]}, std={[round(s, 4) for s in std]})", flush=True)

        results: dict = {
            "benchmark": "trainer_vs_textbook",
            "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": " ".join([os.path.relpath(sys.executable, REPO) if sys.executable.startswith(str(REPO))
                                 else sys.executable, *sys.argv]),
            "environment": {
                "python": platform.python_version(), "torch": torch.__version__,
                "torchvision": torchvision.__version__, "cpu_count": os.cpu_count(),
                "cpu": cpu_model(), "torch_default_threads": DEFAULT_THREADS,
                "bnlab_threads": BNLAB_THREADS, "textbook_threads": DEFAULT_THREADS,
                "textbook_num_workers": NUM_WORKERS, "load_at_start": load_now(),
            },
            "settings": {"repeats": args.repeats, "warmup": 1, "epochs": epochs, "train_subset": train_subset,
                         "batch_size": BATCH_SIZE, "lr": LR, "optimizer": "adam", "val_size": VAL_SIZE,
                         "normalize_mean": mean, "normalize_std": std, "data_dir": str(args.data_dir),
                         "quiet_threshold": args.quiet_threshold, "max_wait_s": args.max_wait,
                         "redo_above": args.redo_above, "retries": args.retries},
            "setup_seconds": {"torchvision_layout": layout_s, "prepare_dataset": prepare_s,
                              "load_prepared": load_s, "torchvision_FashionMNIST": tv_dataset_s},
            "timing": {
                "textbook": "from iter(DataLoader) (2 workers starting) to the last optimizer step, "
                            "one fresh iterator per DataLoader epoch (469 batches of the 60,000 images)",
                "bnlab": "LoopResult.train_seconds: optimizer steps only, evaluation at step 0 and "
                         "epoch ends excluded",
                "execute_run": "wall time of execute_run(): load cache, build, train, evaluate, write run folder",
            },
            "workloads": {},
            "discarded_disturbed": [],  # measurements redone because other processes used the CPUs
        }

        for name in workloads:
            spec = run_spec(name, epochs, train_subset)
            splits = device_splits(data, train_subset=spec.train_subset, normalize=spec.normalize,
                                   device=torch.device("cpu"))
            steps = (len(splits.train_x) // spec.batch_size) * spec.epochs
            print(f"\n[{name}] {spec.relative_dir()}\n[{name}] {steps} optimizer steps per run, "
                  f"1 warm-up + {args.repeats} timed repeats per loop", flush=True)
            reps: dict[str, list[dict]] = {"textbook": [], "bnlab": [], "execute_run": []}
            discarded = results["discarded_disturbed"]
            for rep in range(args.repeats + 1):
                tag = "warm-up" if rep == 0 else f"repeat {rep}"
                order = ["textbook", "bnlab"] if rep % 2 == 0 else ["bnlab", "textbook"]  # alternate
                if not args.no_execute_run:
                    order.append("execute_run")
                for loop in order:
                    for attempt in range(args.retries + 1):
                        quiet_info = (wait_for_quiet(args.quiet_threshold, args.max_wait)
                                      if args.quiet_threshold > 0 else {})
                        before = cpu_snapshot()
                        if loop == "textbook":
                            r = textbook_once(spec, dataset, data, steps)
                        elif loop == "bnlab":
                            r = bnlab_once(spec, data, splits)
                        else:
                            r = execute_run_once(spec, data_path, tmp / f"run-{name}-{rep}")
                        r["foreign_share"] = fs = foreign_share(before, cpu_snapshot())
                        r.update(quiet_info, attempt=attempt, warmup=rep == 0)
                        if r["steps"] != steps:
                            raise RuntimeError(f"{loop} did {r['steps']} steps, expected {steps} ({r})")
                        disturbed = fs is not None and fs > args.redo_above
                        print(f"[{name}] {tag:9s} {loop:11s} {r['seconds']:7.2f} s  "
                              f"{steps / r['seconds']:7.1f} steps/s  other processes "
                              f"{'?' if fs is None else f'{fs:.0%}'} of CPUs  load {r['load_before'][0]:.2f}"
                              + ("  (disturbed: measuring again)" if disturbed and attempt < args.retries
                                 else ""), flush=True)
                        if not disturbed or attempt == args.retries:
                            break
                        discarded.append({"workload": name, "loop": loop, "rep": rep, **r})
                    if rep > 0:
                        reps[loop].append(r)
            del splits
            res = {"spec": spec.as_strings(), "steps": steps, "target_ratio": TARGETS[name]}
            for loop in ("textbook", "bnlab") + (() if args.no_execute_run else ("execute_run",)):
                res[loop] = rate_summary(reps[loop], BATCH_SIZE)
                res[loop]["repeats"] = reps[loop]
            res["ratio_bnlab_over_textbook"] = res["bnlab"]["steps_per_s"] / res["textbook"]["steps_per_s"]
            res["target_met"] = res["ratio_bnlab_over_textbook"] >= TARGETS[name]
            if not args.no_execute_run:
                res["ratio_execute_run_over_textbook"] = (res["execute_run"]["steps_per_s"]
                                                          / res["textbook"]["steps_per_s"])
            results["workloads"][name] = res

    results["environment"]["load_at_end"] = load_now()
    print(f"\nmedians of {args.repeats} repeats; ratio = bnlab steps/s / textbook steps/s "
          f"(execute_run row: whole-run wall time vs the textbook loop's training time); "
          f"others = largest share of the CPUs used by other processes during any repeat\n")
    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
