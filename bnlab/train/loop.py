"""The training loop: one loop for one run and for the K members of a fused group.

train_steps iterates the batch plan's steps over a stepper (bnlab/train/steppers.py:
one model, or the K members of a fused net) and leaves the record-keeping to a
Recorder, written once for both: curve points and the final whole-split
evaluations, the per-step records, divergence, BN snapshots at epoch ends,
checkpoints, progress lines and the clock. Each run draws its data order from
its own generator (a permutation per epoch), so a run trained alone and the
same run fused see the same batches, and each run gets a LoopResult of its own.

A NaN or infinite training loss ends a run with status "diverged" at that
step: a result to report, not an error. A fused member that diverges stops
there, is evaluated as a diverged run is, gets storage of its own back and is
left out of later updates, while the others go on. Which samples each step
takes comes from a BatchPlan (fixed or growing batch); a batch above
max_micro_batch is accumulated from equal micro-batches (runs alone only).
With a CheckpointPolicy the loop saves its whole state now and then (every
member of a group together), and given a saved state it continues from it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from bnlab.train.batches import BatchPlan, plan_batches
from bnlab.train.checkpoint import CheckpointPolicy, save_checkpoint
from bnlab.train.evaluate import evaluate
from bnlab.train.ics import ICSHook
from bnlab.train.probes import ProbeHook
from bnlab.train.steppers import SingleStepper, StepOut, Stepper, _grad_norm, sync  # noqa: F401  (_grad_norm: bench/)
from bnlab.train.tensors import Splits

PROGRESS_EVERY_S = 30.0  # a progress line at least this often during long epochs


@dataclass
class LoopState:
    """The loop's position and everything recorded so far (what a checkpoint holds)."""

    step: int = 0
    epoch: int = 0  # epoch in progress
    batch: int = 0  # next batch of that epoch
    perm: torch.Tensor | None = None  # that epoch's order (cpu), None before it is drawn
    prev_eval: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0  # evaluations, curve points and the final whole-split ones
    wall_seconds: float = 0.0  # elapsed before this process (resumed runs)
    status: str = "ok"
    diverged_step: int | None = None
    history: list[dict] = field(default_factory=list)
    bn_rows: list[dict] = field(default_factory=list)
    step_lr: list[float] = field(default_factory=list)
    losses: torch.Tensor | None = None  # [total] per-step training loss
    grad_norms: torch.Tensor | None = None
    correct: torch.Tensor | None = None  # [total] correct predictions per batch
    # ||g_t - g_{t-1}|| of the output layer's gradient (the course's "gradient predictiveness")
    last_changes: torch.Tensor | None = None
    prev_last_grad: torch.Tensor | None = None
    # per-step instruments' rows (bnlab/train/hooks.py) by instrument name, each with step and epoch
    rows: dict[str, list[dict]] = field(default_factory=dict)
    # seconds spent in instruments whose time is not training time (ICS), by name: left out of train_seconds
    excluded_seconds: dict[str, float] = field(default_factory=dict)

    def __setstate__(self, state: dict) -> None:
        """A checkpoint written before the instruments' rows were kept by name resumes too (probe_rows,
        ics_rows and ics_seconds become rows["probes"], rows["ics"] and excluded_seconds["ics"])."""
        if "rows" not in state:
            named = (("probes", state.pop("probe_rows", [])), ("ics", state.pop("ics_rows", [])))
            state["rows"] = {name: rows for name, rows in named if rows}
            seconds = state.pop("ics_seconds", 0.0)
            state["excluded_seconds"] = {"ics": seconds} if seconds else {}
        self.__dict__.update(state)


@dataclass
class LoopResult:
    status: str  # "ok" or "diverged"
    diverged_step: int | None
    steps_done: int
    steps_per_epoch: int  # of the first epoch (every epoch's, with a fixed batch)
    batch_size: int  # of the first step
    train_seconds: float  # time spent in optimizer steps, evaluation excluded
    eval_seconds: float = 0.0  # time spent evaluating
    history: list[dict] = field(default_factory=list)
    step_loss: torch.Tensor | None = None  # [steps_done] float32
    step_grad_norm: torch.Tensor | None = None
    step_lr: list[float] = field(default_factory=list)
    bn_rows: list[dict] = field(default_factory=list)
    resumed_from: int | None = None
    step_last_grad_change: torch.Tensor | None = None
    rows: dict[str, list[dict]] = field(default_factory=dict)  # per-step instruments' rows, by name
    excluded_seconds: dict[str, float] = field(default_factory=dict)  # their time left out of train_seconds
    plan: BatchPlan | None = None
    micro_batches: list[int] = field(default_factory=list)  # per step: micro-batches accumulated

    @property
    def samples(self) -> int:
        return sum(self.plan.sizes[: self.steps_done])

    @property
    def probe_rows(self) -> list[dict]:
        return self.rows.get("probes", [])

    @property
    def ics_rows(self) -> list[dict]:  # {step, epoch, layer_index, layer, l2, cosine, grad_norm}
        return self.rows.get("ics", [])

    @property
    def ics_seconds(self) -> float:
        return self.excluded_seconds.get("ics", 0.0)


def eval_steps(steps_per_epoch: int, epochs: int, evals_per_epoch: int) -> list[int]:
    """Optimizer steps after which a fixed-batch run evaluates: evenly spread, epoch ends included."""
    return plan_batches(steps_per_epoch, epochs, lambda step: 1).eval_steps(evals_per_epoch)


@dataclass
class RunRecord:
    """What the loop keeps for one run (one member of a group) beside its stepper: order, records, saves."""

    order_seed: int
    bn_snapshot: Callable[[int, float], list[dict]] | None = None
    checkpoint: CheckpointPolicy | None = None
    checkpoint_extra: dict = field(default_factory=dict)
    resume: dict | None = None  # its loaded checkpoint payload (model and optimizer already restored)
    name: str = ""  # in a group's progress lines


class Recorder:
    """Everything the loop records, for every run at once: per-step tensors [K, total], a LoopState per run
    (history, BN rows, per-step instruments' rows, position), divergence, checkpoints, progress lines and the
    clock.

    The clock counts optimizer steps only: evaluations, checkpoints and the instruments whose time is not
    training time (ICS measurements) are left out.
    """

    CHECK_EVERY = 25  # on a GPU, losses are checked for NaN/inf in windows: a check syncs the device

    def __init__(self, stepper: Stepper, runs: list[RunRecord], data: Splits, plan: BatchPlan, *,
                 eval_test: str, log: Callable[[str], None]) -> None:
        self.stepper, self.runs, self.data, self.plan = stepper, runs, data, plan
        self.eval_test, self.log = eval_test, log
        k, total, self.device = len(runs), plan.total, data.train_x.device
        # bench/eval_batch.py: on a CPU, 128 (channels-last for conv nets) is the fastest or within noise of it
        self.eval_batch = 128 if self.device.type == "cpu" else 1024
        # Data order has its own generator per run, so changing the init never changes the order.
        self.orders = [torch.Generator(device="cpu").manual_seed(r.order_seed) for r in runs]
        self.states = [LoopState() if r.resume is None else r.resume["loop"] for r in runs]
        self.losses = torch.empty(k, total, device=self.device)
        self.grad_norms = torch.empty(k, total, device=self.device)
        self.correct = torch.zeros(k, total, device=self.device, dtype=torch.int64)
        # ||g_t - g_{t-1}|| of the output layer's gradient (the course's "gradient predictiveness")
        self.last_changes = torch.full((k, total), float("nan"), device=self.device)
        self.resumed_from = [None if r.resume is None else r.resume["loop"].step for r in runs]
        for i, (run, st) in enumerate(zip(runs, self.states)):
            if run.resume is not None:
                self.orders[i].set_state(run.resume["order_state"])
                for rows, saved in zip(self.records, (st.losses, st.grad_norms, st.correct, st.last_changes)):
                    rows[i] = saved.to(self.device)
        stepper.restore([r.resume for r in runs])
        self.active = [i for i, st in enumerate(self.states) if st.status == "ok"]
        steps_now = {self.states[i].step for i in self.active}
        if len(steps_now) > 1:
            raise ValueError(f"fused members resume from different steps {sorted(steps_now)}")
        self.step = steps_now.pop() if steps_now else total
        if any(r is not None for r in self.resumed_from):
            self.log(f"resumed {sum(r is not None for r in self.resumed_from)} of {k} fused runs from checkpoints "
                     f"at step {self.step}/{total}" if stepper.grouped else
                     f"resumed from checkpoint at step {self.step}/{total}")
        self.wall0 = time.perf_counter() - max(st.wall_seconds for st in self.states)
        self.train_seconds = max((self.states[i].train_seconds for i in self.active), default=0.0)
        self.t0 = self.last_progress = time.perf_counter()

    @property
    def records(self) -> tuple[torch.Tensor, ...]:
        return self.losses, self.grad_norms, self.correct, self.last_changes

    # -- the clock ------------------------------------------------------------------------------
    def pause(self) -> None:
        sync(self.device)
        self.train_seconds += time.perf_counter() - self.t0

    def go_on(self) -> None:
        self.t0 = self.last_progress = time.perf_counter()

    # -- curve points and whole splits -----------------------------------------------------------
    def _scores(self, which: list[int], x: torch.Tensor, y: torch.Tensor, alone: bool) -> list[tuple[float, float]]:
        if alone:  # a diverged member is evaluated by its own module, as the run alone is
            return [evaluate(self.stepper.models[i], x, y, self.eval_batch) for i in which]
        return self.stepper.evaluate(x, y, which, self.eval_batch)

    def evaluate(self, which: list[int], step: int, final: bool = False, alone: bool = False) -> dict[int, tuple]:
        """Curve points at `step` of the runs in `which` (train since their last one, val and maybe test on
        their subsets); at the end also the whole validation and test sets ("val_full", "test_full").
        Returns per run (its train row or None, its val row)."""
        plan, data = self.plan, self.data
        base = {i: {"step": step, "epoch": plan.progress(step), "lr": self.stepper.lr(i),
                    "train_seconds": self.train_seconds, "wall_seconds": time.perf_counter() - self.wall0}
                for i in which}
        trained = {i: None for i in which}
        for i in which:
            st = self.states[i]
            if step > st.prev_eval:
                seen = sum(plan.sizes[st.prev_eval:step])
                trained[i] = {**base[i], "split": "train",
                              "loss": float(self.losses[i, st.prev_eval:step].double().mean()),
                              "acc": float(self.correct[i, st.prev_eval:step].sum()) / seen, "images": seen}
                st.history.append(trained[i])
        e0 = time.perf_counter()
        splits = ["val"] + (["test"] if self.eval_test == "every" else [])
        curve = {}
        for split in splits:
            x, y = data.curve(split)
            for i, (loss, acc) in zip(which, self._scores(which, x, y, alone)):
                curve[i, split] = {**base[i], "split": split, "loss": loss, "acc": acc, "images": len(x)}
                self.states[i].history.append(curve[i, split])
        if final:
            for split in ("val", "test"):
                if split in splits and data.curve_is_whole(split):  # the curve point was the whole split
                    for i in which:
                        self.states[i].history.append({**curve[i, split], "split": f"{split}_full"})
                else:
                    x, y = data.whole(split)
                    for i, (loss, acc) in zip(which, self._scores(which, x, y, alone)):
                        self.states[i].history.append({**base[i], "split": f"{split}_full", "loss": loss,
                                                       "acc": acc, "images": len(x)})
        spent = time.perf_counter() - e0
        for i in which:
            self.states[i].eval_seconds += spent
            self.states[i].prev_eval = step
        return {i: (trained[i], curve[i, "val"]) for i in which}

    def snapshot(self, i: int, step: int, epoch: float) -> None:
        if self.runs[i].bn_snapshot:
            self.states[i].bn_rows.extend(self.runs[i].bn_snapshot(step, epoch))

    # -- the loop's events -----------------------------------------------------------------------
    def start(self) -> None:
        """Learning rates for the first step; at step 0 the first curve points and BN snapshots."""
        self.stepper.set_lr(self.step, self.active)
        if self.step == 0:
            self.evaluate(list(self.active), 0)
            for i in self.active:
                self.snapshot(i, 0, 0.0)
        self.stepper.train()
        self.go_on()

    def permutations(self) -> torch.Tensor:
        """[K, n] on the device: each active run's order of the epoch in progress, drawn where not yet drawn
        (a diverged member's rows still flow through the fused net: its block is frozen and ignored)."""
        for i in self.active:
            st = self.states[i]
            if st.perm is None:
                st.perm = torch.randperm(self.plan.n, generator=self.orders[i])
        first = self.states[self.active[0]].perm
        return torch.stack([st.perm if st.perm is not None else first for st in self.states]).to(self.device)

    def record(self, step: int, out: StepOut) -> None:
        """A step taken: its [K] records, and the active runs' positions, learning rates and rows."""
        self.losses[:, step], self.correct[:, step], self.grad_norms[:, step] = out.loss, out.hits, out.grad_norm
        if out.last_change is not None:
            self.last_changes[:, step] = out.last_change
        done, progress = step + 1, self.plan.progress(step + 1)
        for i in self.active:
            st = self.states[i]
            for name, rows in out.rows.items():
                st.rows.setdefault(name, []).extend({"step": done, "epoch": progress, **row} for row in rows)
            for name, seconds in out.excluded_seconds.items():
                st.excluded_seconds[name] = st.excluded_seconds.get(name, 0.0) + seconds
            st.step_lr.append(self.stepper.lr(i))
            st.step, st.batch = done, done - self.plan.epoch_starts[st.epoch]
        self.t0 += sum(out.excluded_seconds.values())  # not training time

    def diverged(self, step: int) -> list[tuple[int, int]]:
        """(run, step it diverged at) of the active runs whose training loss turned non-finite."""
        if self.device.type == "cpu":  # a scalar check costs nothing on a CPU
            return [(i, step) for i in self.active if not math.isfinite(float(self.losses[i, step - 1]))]
        if step % self.CHECK_EVERY and step != self.plan.total:
            return []
        window = self.losses[:, max(0, step - self.CHECK_EVERY) : step]
        finite = torch.isfinite(window).cpu()
        return [(i, step - window.shape[1] + int((~finite[i]).nonzero()[0]) + 1)
                for i in self.active if not bool(finite[i].all())]

    def stop(self, i: int, at: int) -> None:
        """Run i diverged at step `at`: its last evaluation alone, its storage back, no more updates."""
        self.pause()
        st = self.states[i]
        st.status, st.diverged_step, st.step, st.train_seconds = "diverged", at, at, self.train_seconds
        self.active.remove(i)
        grouped = self.stepper.grouped
        self.log(f"{self.runs[i].name}: " * grouped
                 + f"DIVERGED: non-finite training loss at step {at}/{self.plan.total}"
                 + f"; the other {len(self.active)} go on" * grouped)
        self.evaluate([i], at, final=True, alone=True)  # shows what the diverged model does on val/test
        self.snapshot(i, at, self.plan.progress(at))
        self.stepper.release(i)
        if grouped and self.saving(i):  # a group resumed later finds it stopped
            self.save([i])
        self.go_on()

    def eval_point(self, step: int, size: int) -> None:
        """The evaluation after step `step` of every active run, and its progress line."""
        self.pause()
        plan, total = self.plan, self.plan.total
        points = self.evaluate(list(self.active), step, final=step == total)
        if self.stepper.grouped:
            vals = ", ".join(f"{val['acc']:.3f}" for _, val in points.values())
            self.log(f"epoch {plan.progress(step):.2f}/{plan.epochs} step {step}/{total} batch {size}: "
                     f"{len(self.active)} fused runs, val_acc {vals} ({self.train_seconds:.1f} s training)")
        else:
            (trained, val), = points.values()
            micro, n_micro = self.stepper.micro(size)
            self.log(f"epoch {plan.progress(step):.2f}/{plan.epochs} step {step}/{total} batch {size}"
                     + (f" ({n_micro}x{micro})" if n_micro > 1 else "")
                     + f" train_loss {trained['loss']:.4f} val_loss {val['loss']:.4f} "
                     f"val_acc {val['acc']:.4f} ({self.train_seconds:.1f} s training)")
        self.go_on()

    def progress(self, step: int) -> None:
        if time.perf_counter() - self.last_progress > PROGRESS_EVERY_S:
            self.log(f"  ... step {step}/{self.plan.total}"
                     + ("" if self.stepper.grouped else f" loss {float(self.losses[0, step - 1]):.4f}"))
            self.last_progress = time.perf_counter()

    def epoch_end(self, step: int, epoch: int) -> None:
        for i in self.active:
            st = self.states[i]
            st.epoch, st.batch, st.perm = epoch, 0, None
            self.snapshot(i, step, float(epoch))

    # -- checkpoints -----------------------------------------------------------------------------
    def saving(self, i: int) -> bool:
        return self.runs[i].checkpoint is not None and self.runs[i].checkpoint.enabled

    def checkpoint(self, step: int) -> None:
        """Every active run saved when one's policy is due (all together: members resume from one step)."""
        if step < self.plan.total and any(self.saving(i) and self.runs[i].checkpoint.due(step) for i in self.active):
            self.pause()
            self.save(list(self.active))
            self.go_on()

    def member_state(self, i: int) -> LoopState:
        return dataclasses.replace(
            self.states[i], losses=self.losses[i].cpu(), grad_norms=self.grad_norms[i].cpu(),
            correct=self.correct[i].cpu(), last_changes=self.last_changes[i].cpu(),
            prev_last_grad=self.stepper.last_grad(i))

    def save(self, which: list[int]) -> None:
        for i in which:
            run, st = self.runs[i], self.states[i]
            st.wall_seconds = time.perf_counter() - self.wall0
            if st.status == "ok":
                st.train_seconds = self.train_seconds
            save_checkpoint(run.checkpoint.path, {
                **run.checkpoint_extra, **self.stepper.checkpoint(i), "order_state": self.orders[i].get_state(),
                "loop": self.member_state(i)}, keep_previous=self.stepper.grouped)
            run.checkpoint.saved()

    def results(self) -> list[LoopResult]:
        plan, out = self.plan, []
        for i, st in enumerate(self.states):
            if st.status == "ok":
                st.train_seconds = self.train_seconds
            done = st.step
            out.append(LoopResult(
                status=st.status, diverged_step=st.diverged_step, steps_done=done,
                steps_per_epoch=plan.steps_in_epoch(0), batch_size=plan.sizes[0], train_seconds=st.train_seconds,
                eval_seconds=st.eval_seconds, history=st.history, step_loss=self.losses[i, :done].float().cpu(),
                step_grad_norm=self.grad_norms[i, :done].float().cpu(), step_lr=st.step_lr[:done],
                bn_rows=st.bn_rows, resumed_from=self.resumed_from[i],
                step_last_grad_change=self.last_changes[i, :done].float().cpu(), rows=st.rows,
                excluded_seconds=st.excluded_seconds, plan=plan,
                micro_batches=[self.stepper.micro(size)[1] for size in plan.sizes[:done]],
            ))
        return out


def train_steps(stepper: Stepper, runs: list[RunRecord], data: Splits, plan: BatchPlan, *, evals_per_epoch: int,
                eval_test: str = "final", log: Callable[[str], None] = print) -> list[LoopResult]:
    """The training loop: the plan's steps over `stepper`, one LoopResult per run (as each run alone gives)."""
    rec = Recorder(stepper, runs, data, plan, eval_test=eval_test, log=log)
    evals = set(plan.eval_steps(evals_per_epoch))
    step = rec.step
    rec.start()
    while step < plan.total and rec.active:
        # the runs' own epoch, not the step's: a checkpoint on an epoch boundary is written before that
        # epoch's end is processed below, so a run resumed from it finishes the old epoch (new order, BN
        # snapshot) before the next one starts, as the uninterrupted run did
        epoch = rec.states[rec.active[0]].epoch
        perms = rec.permutations()
        while step < plan.epoch_starts[epoch + 1]:
            stepper.set_lr(step, rec.active)
            size, offset = plan.sizes[step], plan.offsets[step]
            rec.record(step, stepper.step(step, perms[:, offset : offset + size], rec.active))
            step += 1
            for i, at in rec.diverged(step):
                rec.stop(i, at)
            if not rec.active:
                break
            if step in evals:
                rec.eval_point(step, size)
            else:
                rec.progress(step)
            rec.checkpoint(step)
        if step == plan.epoch_starts[epoch + 1]:
            rec.epoch_end(step, epoch + 1)
    return rec.results()


def train_loop(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    data: Splits,
    *,
    epochs: int,
    batch_size: int,
    evals_per_epoch: int,
    order_seed: int,
    eval_test: str = "final",
    log: Callable[[str], None] = print,
    bn_snapshot: Callable[[int, float], list[dict]] | None = None,
    checkpoint: CheckpointPolicy | None = None,
    checkpoint_extra: dict | None = None,
    resume: dict | None = None,
    probe_every: int = 0,
    probe_etas: list[float] | tuple = (),
    lr_at: Callable[[int], float] | None = None,
    batch_at: Callable[[int], int] | None = None,
    max_micro_batch: int = 0,
    ics_every: int = 0,
    l2: float = 0.0,
    label_smoothing: float = 0.0,
) -> LoopResult:
    """One run through train_steps; `resume` is a loaded checkpoint payload (model and optimizer already restored).

    batch_at(step) gives a growing batch (batch_size is then ignored);
    max_micro_batch > 0 splits larger batches into accumulated micro-batches.
    ics_every > 0 measures internal covariate shift per layer (bnlab/train/ics.py) after
    every k-th optimizer step that is one pass; its time is left out of train_seconds.
    l2 > 0 adds the gradient of l2 * sum ||W||^2 over weight matrices and conv kernels to every step
    (bnlab/train/l2.py); losses, probes and ICS stay the cross-entropy's. label_smoothing > 0 trains on
    cross-entropy against smoothed targets, and the recorded training loss is that loss.
    """
    plan = plan_batches(len(data.train_x), epochs, batch_at or (lambda step: batch_size))
    hooks = ([ProbeHook(model, probe_every, probe_etas)] if probe_every else []) \
        + ([ICSHook(model, ics_every)] if ics_every else [])
    stepper = SingleStepper(model, optimizer, data, plan, lr_at=lr_at, max_micro_batch=max_micro_batch,
                            hooks=hooks, l2=l2, label_smoothing=label_smoothing)
    run = RunRecord(order_seed, bn_snapshot, checkpoint, checkpoint_extra or {}, resume)
    (result,) = train_steps(stepper, [run], data, plan, evals_per_epoch=evals_per_epoch, eval_test=eval_test,
                            log=log)
    return result
