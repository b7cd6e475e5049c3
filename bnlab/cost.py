"""What a config costs before anything runs: runs, optimizer steps and FLOPs per study, and device-hours.

    python -m bnlab.cost --configfile config/full.yaml            # runs, steps, FLOPs
    python -m bnlab.cost --configfile config/full.yaml --measure  # + device-hours on this machine
    make estimate CONFIG=config/full.yaml                          # the same, measured

Nothing is read from the datasets: image counts come from bnlab.data.catalog and
the config's val_size (bnlab.data.limits.training_split, as build_plan checks
them), and every run's optimizer steps from the batch plan its training loop
follows (bnlab.train.batches.plan_batches with bnlab.train.run.batch_function),
so a growing batch is counted step by step.

FLOPs, by convention (stated in the output too):
- a model's forward cost is its multiply-accumulates per image from the
  architecture accounting (bnlab.models.accounting: conv and linear layers; BN,
  activations, pooling, bias additions and the optimizer's update count 0),
  with 1 multiply-accumulate = 2 FLOPs;
- a training sample costs 3 forward passes (the forward, and a backward that
  computes input and weight gradients, each about one forward): 6 x MACs;
- an evaluated image costs one forward, 2 x MACs: the curve points (step 0 and
  every evaluation of the loop), the final whole validation and test sets, and
  the co-adaptation proxy's forward over the validation curve subset;
- extra passes cost 6 x MACs per sample each, as each instrument declares them
  (bnlab/instruments.py, extra_passes and eval_images): a probe step does one
  forward/backward per step size (+1 with dropout), an ICS step one per
  measured layer (an upper bound: its backward stops at that layer).
Runs are assumed not to diverge (a diverged run stops early: the estimate is an
upper bound) and to be trained from scratch.

Device-hours (--measure): a few optimizer steps of each distinct architecture
(model, widths, BN, activation, dropout, optimizer and the batch one forward
takes) through the real training loop (bnlab.train.loop.train_loop with the
real model, layout and optimizer) on random tensors of the dataset's shape, on
the device and threads a run would use. The measured training rate (FLOP/s by
the convention above) converts every FLOP of a run, evaluation and extras
included, into seconds; a run's device-hours are those seconds, one run at a
time on the whole device. Start-up, data preparation, analyses and the report
are not included.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from bnlab.config import ConfigError, Plan, build_plan, load_config
from bnlab.data.catalog import INPUT_SHAPES, NUM_CLASSES, TEST_IMAGES
from bnlab.data.limits import training_split, val_size_for
from bnlab.instruments import instruments
from bnlab.params import NOT_APPLICABLE, RunSpec

FLOPS_PER_MAC = 2
TRAIN_PASSES = 3  # forward + backward (input and weight gradients): a training sample costs 3 forwards
DEFAULT_CONFIG = "config.yaml"  # the Snakefile's default
MEASURE_MAX_BATCH = 256  # largest batch --measure times (see measure_batch)


# ------------------------------------------------------------------ the architecture's cost


@dataclass(frozen=True)
class ArchCost:
    macs: int  # multiply-accumulates of one image's forward
    ics_layers: int  # weight layers an ICS measurement takes a forward/backward for
    dropout: bool  # a dropout layer with p > 0 (a probe then recomputes the base gradient)
    micro_cap: int  # largest one-pass batch under batch_mem_mb (0: no cap)


def _arch_key(run: RunSpec) -> tuple:
    return (run.dataset, run.model, run.widths, run.bn, run.bn_impl, run.activation, run.dropout_in,
            run.dropout_hidden, run.batch_mem_mb)


@lru_cache(maxsize=None)
def _arch_cost(key: tuple) -> ArchCost:
    import torch

    from bnlab.models import create_model
    from bnlab.models.accounting import layer_table, totals
    from bnlab.params import parse_widths
    from bnlab.train.ics import ics_layers
    from bnlab.train.memory import micro_batch_cap
    from bnlab.train.probes import has_active_dropout

    dataset, model_name, widths, bn, bn_impl, activation, dropout_in, dropout_hidden, mem = key
    shape = INPUT_SHAPES[dataset]
    with torch.device("meta"):  # shapes only: no weights are drawn, nothing is computed
        model = create_model(model_name, input_shape=shape, num_classes=NUM_CLASSES[dataset], bn=bn,
                             bn_impl=bn_impl, activation=activation, dropout_in=dropout_in,
                             dropout_hidden=dropout_hidden, widths=parse_widths(widths))
    cap = micro_batch_cap(model, shape, float(mem)) if mem != NOT_APPLICABLE else 0
    return ArchCost(macs=totals(layer_table(model, shape))["macs"], ics_layers=len(ics_layers(model)),
                    dropout=has_active_dropout(model), micro_cap=cap)


def arch_cost(run: RunSpec) -> ArchCost:
    """Forward MACs per image (and what the extras need) of a run's model, from the accounting."""
    return _arch_cost(_arch_key(run))


# ------------------------------------------------------------------------- one run


@dataclass(frozen=True)
class RunCost:
    run: RunSpec
    steps: int  # optimizer steps
    samples: int  # training samples over all steps
    eval_images: int  # images evaluated (forward only): curve points, final whole splits, co-adaptation
    extra_samples: int  # samples of extra forward/backward passes: instruments' (landscape probes, ICS)
    macs: int  # per image
    pass_batch: int  # the one-pass batch (micro-batch) that carries most of the samples

    @property
    def train_flops(self) -> float:
        return float(TRAIN_PASSES * FLOPS_PER_MAC * self.macs * self.samples)

    @property
    def eval_flops(self) -> float:
        return float(FLOPS_PER_MAC * self.macs * self.eval_images)

    @property
    def extra_flops(self) -> float:
        return float(TRAIN_PASSES * FLOPS_PER_MAC * self.macs * self.extra_samples)

    @property
    def flops(self) -> float:
        return self.train_flops + self.eval_flops + self.extra_flops


def batch_plan(run: RunSpec, config_data: Mapping):
    """The BatchPlan the run's training loop follows (bnlab.train.loop.train_loop builds the same)."""
    from bnlab.train.batches import plan_batches
    from bnlab.train.run import batch_function

    n, _ = training_split(config_data, run)
    return plan_batches(n, run.epochs, batch_function(run) or (lambda step: run.batch_size))


def _curve_size(whole: int, eval_size: int) -> int:
    """Images of a curve point: the stratified subset (bnlab.train.tensors.with_curve_subsets) or the split."""
    return eval_size if 0 < eval_size < whole else whole


def run_cost(run: RunSpec, config_data: Mapping) -> RunCost:
    """Steps, samples and evaluated images of one run, as bnlab.train.loop.train_loop will take them."""
    from bnlab.schedules import accumulation

    plan = batch_plan(run, config_data)
    arch = arch_cost(run)
    n_val, n_test = val_size_for(config_data, run.dataset), TEST_IMAGES[run.dataset]
    curve_val, curve_test = _curve_size(n_val, run.eval_size), _curve_size(n_test, run.eval_size)
    every_test = run.eval_test == "every"
    points = 1 + len(plan.eval_steps(run.evals_per_epoch))  # step 0, then the loop's evaluation steps
    eval_images = points * (curve_val + (curve_test if every_test else 0))
    eval_images += n_val if curve_val < n_val else 0  # the final whole split, unless the curve point was it
    eval_images += 0 if every_test and curve_test == n_test else n_test
    taken = [inst for inst in instruments() if inst.active(run)]  # bnlab/instruments.py: what each costs
    eval_images += sum(inst.eval_images(run, curve_val) for inst in taken)

    def split(size: int) -> tuple[int, int]:
        return accumulation(size, arch.micro_cap) if arch.micro_cap else (size, 1)

    per_step = [(inst, passes) for inst in taken if inst.every(run) and (passes := inst.extra_passes(run, arch))]
    extra = 0
    by_pass: dict[int, int] = {}
    for step, size in enumerate(plan.sizes, start=1):
        micro, n_micro = split(size)
        by_pass[micro] = by_pass.get(micro, 0) + size
        for inst, passes in per_step:  # on the steps it is taken (one-pass ones only, unless it declares so)
            if inst.measures(run, step, n_micro):
                extra += passes * size
    pass_batch = max(by_pass, key=lambda b: (by_pass[b], b)) if by_pass else run.batch_size
    return RunCost(run=run, steps=plan.total, samples=sum(plan.sizes), eval_images=eval_images,
                   extra_samples=extra, macs=arch.macs, pass_batch=pass_batch)


def size_rank(run: RunSpec, config_data: Mapping) -> int:
    """0..999, growing with the run's floating-point work (10 log2 of its GFLOPs): the workflow starts the
    bigger runs first among those equally ready, so the last jobs to start are short ones and no job slot
    sits idle while one long run finishes alone (longest processing time first)."""
    import math

    try:
        gflops = run_cost(run, config_data).flops / 1e9
    except ValueError:
        # a run its trainer will refuse (say, a memory cap too small for 2 samples): it still gets its
        # job, last, so that the refusal is reported as that run's failure rather than the workflow's
        return 0
    return max(0, min(999, int(10 * math.log2(gflops)) + 1)) if gflops >= 1 else 0


# ----------------------------------------------------------------------- the plan


@dataclass
class StudyCost:
    name: str
    kind: str
    runs: list[RunCost] = field(default_factory=list)

    def total(self, attr: str) -> float:
        return sum(getattr(r, attr) for r in self.runs)


@dataclass
class PlanCost:
    studies: dict[str, StudyCost]
    runs: list[RunCost]  # every distinct run once (studies may share cells)

    def total(self, attr: str) -> float:
        return sum(getattr(r, attr) for r in self.runs)


def plan_cost(plan: Plan, log: Callable[[str], None] | None = None) -> PlanCost:
    data = plan.config["data"]
    by_dir: dict[str, RunCost] = {}
    studies = {}
    for name, study in plan.studies.items():
        if log and study.runs:
            log(f"counting {name}: {len(study.runs)} runs")
        costs = []
        for run in study.runs:
            key = run.relative_dir()
            if key not in by_dir:
                by_dir[key] = run_cost(run, data)
            costs.append(by_dir[key])
        studies[name] = StudyCost(name=name, kind=study.kind, runs=costs)
    return PlanCost(studies=studies, runs=list(by_dir.values()))


# ---------------------------------------------------------------------- measuring


def measure_batch(cost: RunCost, max_batch: int = MEASURE_MAX_BATCH) -> int:
    """The batch --measure times for a run: its main one-pass batch, at most max_batch.

    A cut batch stands for the larger one at its own per-sample speed, which
    may be off either way (on the 2-core CPU MiniGoogLeNet took more time per
    image at 256 than at 64); it keeps one timed step of a growing run at
    seconds rather than a minute.
    """
    return min(cost.pass_batch, max_batch)


def measure_key(cost: RunCost, max_batch: int = MEASURE_MAX_BATCH) -> tuple:
    """What the speed of a run's steps depends on; runs with the same key share one measurement."""
    r = cost.run
    return (r.dataset, r.model, r.widths, r.bn, r.bn_impl, r.activation, r.dropout_in > 0, r.dropout_hidden > 0,
            r.optimizer, measure_batch(cost, max_batch))


def key_label(key: tuple) -> str:
    dataset, model, widths, bn, bn_impl, activation, din, dh, optimizer, batch = key
    parts = [dataset, model + ("" if widths in (NOT_APPLICABLE, "default") else f" {widths}"),
             f"bn {bn}" + (" (bnlab)" if bn_impl != "torch" else ""), activation]
    if din or dh:
        parts.append("dropout")
    return ", ".join(parts + [optimizer, f"batch {batch}"])


@dataclass(frozen=True)
class Throughput:
    key: tuple
    batch: int
    steps: int  # timed steps (after a warm-up step)
    seconds: float  # their train_seconds
    macs: int

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / self.steps

    @property
    def samples_per_second(self) -> float:
        return self.steps * self.batch / self.seconds

    @property
    def flops_per_second(self) -> float:
        return TRAIN_PASSES * FLOPS_PER_MAC * self.macs * self.samples_per_second


def _random_splits(run: RunSpec, n_train: int, device):
    import torch

    from bnlab.train.tensors import Splits

    shape, classes = INPUT_SHAPES[run.dataset], NUM_CLASSES[run.dataset]

    def images(n):
        return torch.randn(n, *shape, device=device)

    def labels(n):
        return torch.randint(0, classes, (n,), device=device)

    n_eval = 8  # the loop evaluates at step 0 and at the end; kept tiny, and not in train_seconds
    return Splits(train_x=images(n_train), train_y=labels(n_train), val_x=images(n_eval), val_y=labels(n_eval),
                  test_x=images(n_eval), test_y=labels(n_eval))


def time_steps(run: RunSpec, batch: int, steps: int, device) -> float:
    """train_seconds of `steps` optimizer steps of the run's model at `batch`, on random tensors.

    The run's real model (create_model), layout (fast_layout), optimizer
    (make_optimizer, at lr 1e-3: the rate does not change the work) and the
    real loop (train_loop: one pass per step, evaluation excluded from the time).
    """
    import torch

    from bnlab.models import create_model
    from bnlab.train.loop import train_loop
    from bnlab.train.run import make_optimizer
    from bnlab.train.tensors import fast_layout

    torch.manual_seed(0)
    model = create_model(run.model, input_shape=INPUT_SHAPES[run.dataset], num_classes=NUM_CLASSES[run.dataset],
                         bn=run.bn, bn_impl=run.bn_impl, activation=run.activation, dropout_in=run.dropout_in,
                         dropout_hidden=run.dropout_hidden, init=run.init, init_scale=run.init_scale_value,
                         widths=run.widths_list).to(device)
    model, splits = fast_layout(model, _random_splits(run, steps * batch, device))
    optimizer = make_optimizer(dataclasses.replace(run, lr=1e-3), model.parameters())
    result = train_loop(model, optimizer, splits, epochs=1, batch_size=batch, evals_per_epoch=1, order_seed=0,
                        log=lambda _: None)
    if result.steps_done < steps:  # random labels at lr 1e-3 do not diverge; if they did, say so
        raise RuntimeError(f"measurement of {run.model} diverged at step {result.diverged_step}")
    return result.train_seconds


def measure(costs: list[RunCost], device, *, max_steps: int = 20, seconds: float = 5.0,
            max_batch: int = MEASURE_MAX_BATCH, log: Callable[[str], None] = print) -> dict[tuple, Throughput]:
    """Throughput of every distinct measure_key of the runs: 1 warm-up step, then up to max_steps timed
    steps (at least 3), as many as fit in about `seconds` by the warm-up's pace."""
    from bnlab.train.determinism import prepare_determinism

    prepare_determinism(device)  # as execute_run: deterministic algorithms (their speed is part of a run's)
    first: dict[tuple, RunCost] = {}
    for cost in costs:
        first.setdefault(measure_key(cost, max_batch), cost)
    out = {}
    for i, (key, cost) in enumerate(first.items(), start=1):
        batch = key[-1]
        warm = time_steps(cost.run, batch, 1, device)
        steps = max(3, min(max_steps, int(seconds / max(warm, 1e-6))))
        spent = time_steps(cost.run, batch, steps, device)
        out[key] = Throughput(key=key, batch=batch, steps=steps, seconds=spent, macs=cost.macs)
        log(f"[{i}/{len(first)}] {key_label(key)}: {spent / steps:.3g} s/step over {steps} steps, "
            f"{out[key].samples_per_second:,.0f} samples/s")
    return out


def run_hours(cost: RunCost, speeds: Mapping[tuple, Throughput], max_batch: int = MEASURE_MAX_BATCH) -> float:
    """Device-hours of a run: its FLOPs at the training rate measured for its architecture."""
    return cost.flops / speeds[measure_key(cost, max_batch)].flops_per_second / 3600.0


# -------------------------------------------------------------------------- output


def si(x: float) -> str:
    """3 significant digits with an SI prefix: 3.32e16 -> '33.2P'."""
    for factor, prefix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= factor:
            return f"{x / factor:.3g}{prefix}"
    return f"{x:.3g}"


CONVENTION = (
    "FLOPs: 1 multiply-accumulate (conv and linear layers, bnlab.models.accounting) = 2 FLOPs; a training sample "
    "= 3 forward passes (forward, backward to inputs and weights) = 6 x MACs; an evaluated image = 2 x MACs; "
    "probes and ICS = 6 x MACs per extra pass and sample. BN, activations, pooling and the optimizer update are "
    "not counted. Runs are assumed not to diverge (a diverged run stops early)."
)


def table(pc: PlanCost, speeds: Mapping[tuple, Throughput] | None, max_batch: int = MEASURE_MAX_BATCH,
          limits: Mapping[str, int] | None = None) -> str:
    """Per study: runs, steps, samples, FLOPs; with speeds, device-hours, the longest run's minutes and,
    given `limits` (study -> the runtime_min its jobs ask a cluster for), that limit."""
    header = ["study", "runs", "steps", "samples", "train FLOP", "eval FLOP", "extra FLOP", "total FLOP"]
    if speeds is not None:
        header += ["device-h", "longest run min"] + (["limit min"] if limits else [])
    rows = []

    def row(name, runs: list[RunCost]):
        cells = [name, f"{len(runs)}", f"{sum(r.steps for r in runs):,}", si(sum(r.samples for r in runs)),
                 si(sum(r.train_flops for r in runs)), si(sum(r.eval_flops for r in runs)),
                 si(sum(r.extra_flops for r in runs)), si(sum(r.flops for r in runs))]
        if speeds is not None:
            cells.append(f"{sum(run_hours(r, speeds, max_batch) for r in runs):,.1f}")
            cells.append(f"{60 * max(run_hours(r, speeds, max_batch) for r in runs):,.0f}")
            if limits:
                cells.append(f"{limits[name]:,}" if name in limits else "")
        return cells

    for study in pc.studies.values():
        if study.runs:
            rows.append(row(study.name, study.runs))
        else:
            rows.append([study.name, "0", f"(kind {study.kind}: trains nothing)"] + [""] * (len(header) - 3))
    rows.append(row("total (distinct runs)", pc.runs))
    full = [r for r in [header] + rows if not r[2].startswith("(kind")]
    widths = [max(len(r[i]) for r in full) for i in range(len(header))]
    lines = []
    for r in [header] + rows:
        if r is rows[-1]:
            lines.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
        if r[2].startswith("(kind"):  # a study that trains nothing: its name, 0 runs, what it is
            lines.append(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]}")
        else:
            lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def speed_table(speeds: Mapping[tuple, Throughput], pc: PlanCost, max_batch: int = MEASURE_MAX_BATCH) -> str:
    users: dict[tuple, int] = {}
    for cost in pc.runs:
        users[measure_key(cost, max_batch)] = users.get(measure_key(cost, max_batch), 0) + 1
    header = ["architecture (as measured)", "runs", "MACs/image", "timed steps", "s/step", "samples/s", "FLOP/s"]
    rows = [[key_label(k), str(users.get(k, 0)), si(t.macs), str(t.steps), f"{t.seconds_per_step:.3g}",
             f"{t.samples_per_second:,.0f}", si(t.flops_per_second)] for k, t in speeds.items()]
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in [header] + rows)


def device_text(device, threads: int) -> str:
    import torch

    from bnlab.provenance import cpu_model

    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (cuda)"
    return f"CPU {cpu_model()}, {os.cpu_count()} cores, {threads} torch threads"


# ----------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bnlab.cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", default=DEFAULT_CONFIG, help=f"config to cost (default {DEFAULT_CONFIG})")
    parser.add_argument("--measure", action="store_true",
                        help="time a few optimizer steps of each architecture here and estimate device-hours")
    parser.add_argument("--device", default=None,
                        help="cpu, cuda or auto for --measure (default: the config's execution.device)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for --measure (default: execution.threads_per_run, at most the cores)")
    parser.add_argument("--steps", type=int, default=20, help="at most this many timed steps per architecture")
    parser.add_argument("--seconds", type=float, default=5.0, help="about this long timing each architecture")
    parser.add_argument("--max-batch", type=int, default=MEASURE_MAX_BATCH,
                        help="largest batch timed; larger ones are timed at this size")
    args = parser.parse_args(argv)

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        plan = build_plan(load_config(args.configfile))
    except FileNotFoundError as err:
        print(f"error: no config file {err.filename}", file=sys.stderr)
        return 2
    except ConfigError as err:
        print(f"{args.configfile}: {err}", file=sys.stderr)
        return 2
    pc = plan_cost(plan, log=progress)
    speeds = None
    device = threads = None
    if args.measure:
        import torch

        from bnlab.train.allocator import keep_freed_memory
        from bnlab.train.run import resolve_device

        execution = plan.config["execution"]
        try:
            device = resolve_device(args.device or execution["device"])
        except RuntimeError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        threads = args.threads or min(execution["threads_per_run"], os.cpu_count() or 1)
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        keep_freed_memory()  # as a run trains (it stays for the rest of this process: harmless)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        progress(f"measuring on {device_text(device, threads)} (load average {load:.2f})")
        try:
            speeds = measure(pc.runs, device, max_steps=args.steps, seconds=args.seconds,
                             max_batch=args.max_batch, log=progress)
        finally:
            torch.set_num_threads(before)

    n_train = len(plan.train_studies)
    print(f"Cost of {args.configfile}: {len(pc.runs)} training runs in {n_train} training studies "
          f"(from the plan; no data read)")
    print()
    # the wall-time limit each study's training jobs ask a cluster for (the longest of its runs' limits)
    limits = {name: max(plan.run_resources(r)["runtime_min"] for r in study.runs)
              for name, study in plan.studies.items() if study.runs}
    print(table(pc, speeds, args.max_batch, limits))
    print()
    print(CONVENTION)
    if speeds is None:
        print("Throughput not measured: device-hours need --measure (a few optimizer steps of each architecture "
              "on this machine).")
    else:
        short = [f"{s.name} (longest run {60 * max(run_hours(r, speeds, args.max_batch) for r in s.runs):,.0f} "
                 f"min, limit {limits[s.name]} min)" for s in pc.studies.values()
                 if s.runs and 60 * max(run_hours(r, speeds, args.max_batch) for r in s.runs) > limits[s.name]]
        if short:
            print(f"On this device these studies' runs outlast their runtime limit (execution.runtime_min or the "
                  f"study's resources): {'; '.join(short)}. A job killed at its limit resumes from its checkpoint "
                  "when resubmitted (profiles/slurm retries 2 times), but a limit below the run's time wastes the "
                  "work since the last checkpoint each time.")
        print()
        print(speed_table(speeds, pc, args.max_batch))
        print()
        hours = sum(run_hours(r, speeds, args.max_batch) for r in pc.runs)
        print(f"Measured on {device_text(device, threads)}: {hours:,.1f} device-hours in all "
              f"({hours / 24:,.1f} days), one run at a time on the whole device. Throughput from "
              f"{sum(t.steps for t in speeds.values())} timed optimizer steps of the real training loop on random "
              f"tensors; batches above {args.max_batch} timed at {args.max_batch}. Start-up, data preparation, "
              "analyses and the report not included.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
