"""The training loop: randperm batches over device tensors, periodic evaluation.

A NaN or infinite training loss ends the run with status "diverged" at that
step: a result to report, not an error. Which samples each step takes comes
from a BatchPlan (fixed or growing batch); a batch above max_micro_batch is
accumulated from equal micro-batches. With a CheckpointPolicy the loop saves
its whole state now and then, and given a saved state it continues from it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from bnlab.train.ics import ics_layers, ics_step, rng_state, snapshot
from bnlab.train.l2 import add_l2_gradient, l2_weights
from bnlab.train.probes import last_linear, probe_step
from bnlab.schedules import accumulation
from bnlab.train.batches import BatchPlan, plan_batches
from bnlab.train.checkpoint import CheckpointPolicy, restore_rng_states, rng_states, save_checkpoint
from bnlab.train.evaluate import evaluate
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
    probe_rows: list[dict] = field(default_factory=list)
    ics_rows: list[dict] = field(default_factory=list)
    ics_seconds: float = 0.0  # spent measuring ICS (left out of train_seconds)


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
    probe_rows: list[dict] = field(default_factory=list)
    ics_rows: list[dict] = field(default_factory=list)  # {step, epoch, layer_index, layer, l2, cosine, grad_norm}
    ics_seconds: float = 0.0
    plan: BatchPlan | None = None
    micro_batches: list[int] = field(default_factory=list)  # per step: micro-batches accumulated

    @property
    def samples(self) -> int:
        return sum(self.plan.sizes[: self.steps_done])


def eval_steps(steps_per_epoch: int, epochs: int, evals_per_epoch: int) -> list[int]:
    """Optimizer steps after which a fixed-batch run evaluates: evenly spread, epoch ends included."""
    return plan_batches(steps_per_epoch, epochs, lambda step: 1).eval_steps(evals_per_epoch)


def _grad_norm(params: list[torch.Tensor]) -> torch.Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


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
    """Train for `epochs`; `resume` is a loaded checkpoint payload (model and optimizer already restored).

    batch_at(step) gives a growing batch (batch_size is then ignored);
    max_micro_batch > 0 splits larger batches into accumulated micro-batches.
    ics_every > 0 measures internal covariate shift per layer (bnlab/train/ics.py) after
    every k-th optimizer step that is one pass; its time is left out of train_seconds.
    l2 > 0 adds the gradient of l2 * sum ||W||^2 over weight matrices and conv kernels to every step
    (bnlab/train/l2.py); losses, probes and ICS stay the cross-entropy's. label_smoothing > 0 trains on
    cross-entropy against smoothed targets, and the recorded training loss is that loss.
    """
    device = data.train_x.device
    n = len(data.train_x)
    plan = plan_batches(n, epochs, batch_at or (lambda step: batch_size))
    total = plan.total
    evals = set(plan.eval_steps(evals_per_epoch))
    # (micro-batch, count) of every batch size in the plan: one pass, or equal accumulated parts
    micro_split = {size: accumulation(size, max_micro_batch) if max_micro_batch else (size, 1)
                   for size in set(plan.sizes)}
    # Data order has its own generator, so changing the init never changes the order.
    order = torch.Generator(device="cpu").manual_seed(order_seed)
    params = [p for p in model.parameters() if p.requires_grad]
    on_cpu = device.type == "cpu"
    check_every = 25  # on a GPU, losses are checked for NaN/inf in windows: a check syncs the device
    # bench/eval_batch.py: on a CPU, 128 (channels-last for conv nets) is the fastest or within noise of it
    eval_batch = 128 if device.type == "cpu" else 1024

    if resume is not None:
        st: LoopState = resume["loop"]
        order.set_state(resume["order_state"])
        restore_rng_states(resume["rng"])
        st.losses, st.grad_norms, st.correct, st.last_changes = (
            t.to(device) for t in (st.losses, st.grad_norms, st.correct, st.last_changes))
        if st.prev_last_grad is not None:
            st.prev_last_grad = st.prev_last_grad.to(device)
        log(f"resumed from checkpoint at step {st.step}/{total}")
    else:
        st = LoopState(losses=torch.empty(total, device=device),
                       grad_norms=torch.empty(total, device=device),
                       correct=torch.empty(total, device=device, dtype=torch.int64),
                       last_changes=torch.full((total,), float("nan"), device=device))
    output_layer = last_linear(model)
    shift_layers = ics_layers(model) if ics_every else []
    decayed = l2_weights(model) if l2 else []
    resumed_from = st.step if resume is not None else None
    wall0 = time.perf_counter() - st.wall_seconds

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def set_lr(step: int) -> None:
        if lr_at is not None:
            lr = lr_at(min(step, total - 1))
            for group in optimizer.param_groups:
                group["lr"] = lr

    set_lr(st.step)

    def evaluated(split: str, x: torch.Tensor, y: torch.Tensor, base: dict) -> dict:
        loss, acc = evaluate(model, x, y, eval_batch)
        st.history.append({**base, "split": split, "loss": loss, "acc": acc, "images": len(x)})
        return st.history[-1]

    def record_eval(step: int, final: bool = False) -> dict:
        """Curve points at `step` (train since the last one, val and maybe test on their subsets);
        at the end also the whole validation and test sets ("val_full", "test_full")."""
        base = {"step": step, "epoch": plan.progress(step), "lr": optimizer.param_groups[0]["lr"],
                "train_seconds": st.train_seconds, "wall_seconds": time.perf_counter() - wall0}
        if step > st.prev_eval:
            seen = sum(plan.sizes[st.prev_eval:step])
            st.history.append({**base, "split": "train",
                               "loss": float(st.losses[st.prev_eval:step].double().mean()),
                               "acc": float(st.correct[st.prev_eval:step].sum()) / seen, "images": seen})
        e0 = time.perf_counter()
        curve = {"val": evaluated("val", *data.curve("val"), base)}
        if eval_test == "every":
            curve["test"] = evaluated("test", *data.curve("test"), base)
        if final:
            for split in ("val", "test"):
                if split in curve and data.curve_is_whole(split):  # the curve point was the whole split
                    st.history.append({**curve[split], "split": f"{split}_full"})
                else:
                    evaluated(f"{split}_full", *data.whole(split), base)
        st.eval_seconds += time.perf_counter() - e0
        st.prev_eval = step
        return curve["val"]

    def save():
        st.wall_seconds = time.perf_counter() - wall0
        save_checkpoint(checkpoint.path, {
            **(checkpoint_extra or {}), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "rng": rng_states(), "order_state": order.get_state(),
            "loop": LoopState(**{**st.__dict__, "losses": st.losses.cpu(), "grad_norms": st.grad_norms.cpu(),
                                 "correct": st.correct.cpu(), "last_changes": st.last_changes.cpu(),
                                 "prev_last_grad": None if st.prev_last_grad is None else st.prev_last_grad.cpu()}),
        })
        checkpoint.saved()

    if resume is None:
        record_eval(0)
        if bn_snapshot:
            st.bn_rows.extend(bn_snapshot(0, 0.0))
    model.train()
    last_progress = t0 = time.perf_counter()
    while st.epoch < epochs and st.status == "ok":
        if st.perm is None:
            st.perm = torch.randperm(n, generator=order)
        perm = st.perm.to(device)
        while st.batch < plan.steps_in_epoch(st.epoch):
            step = st.step
            set_lr(step)
            size, offset = plan.sizes[step], plan.offsets[step]
            micro, n_micro = micro_split[size]
            idx = perm[offset : offset + size]
            xb, yb = data.train_x[idx], data.train_y[idx]
            for p in params:  # what zero_grad(set_to_none=True) does, without its ~35 us of wrapping per step
                p.grad = None
            # ICS needs the step's own dropout masks: the RNG state before its forward
            measure_ics = bool(shift_layers) and (step + 1) % ics_every == 0 and n_micro == 1
            rng_before = rng_state(device) if measure_ics else None
            if n_micro == 1:
                logits = model(xb)
                loss = F.cross_entropy(logits, yb, label_smoothing=label_smoothing)
                loss.backward()
                hits = (logits.argmax(dim=1) == yb).sum()
            else:
                # Equal micro-batches, each mean loss scaled by 1/n_micro: the summed
                # gradient is the full batch's (with BN, each micro-batch is
                # normalised on its own statistics: ghost batch norm).
                loss, hits = torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.int64)
                for k in range(n_micro):
                    xm, ym = xb[k * micro : (k + 1) * micro], yb[k * micro : (k + 1) * micro]
                    logits = model(xm)
                    part = F.cross_entropy(logits, ym, label_smoothing=label_smoothing) / n_micro
                    part.backward()
                    loss = loss + part.detach()
                    hits = hits + (logits.argmax(dim=1) == ym).sum()
            if decayed:  # the gradient of J = loss + l2 * sum ||W||^2 (the recorded loss stays the loss)
                add_l2_gradient(decayed, l2)
            st.grad_norms[step] = _grad_norm(params)
            last_grad = torch.cat([output_layer.weight.grad.flatten()]
                                  + ([output_layer.bias.grad.flatten()] if output_layer.bias is not None else []))
            if st.prev_last_grad is not None:
                st.last_changes[step] = torch.linalg.vector_norm(last_grad - st.prev_last_grad)
            st.prev_last_grad = last_grad
            if probe_every and (step + 1) % probe_every == 0 and n_micro == 1:
                # Before optimizer.step(): the probe looks along this step's gradient, on this
                # batch, and leaves parameters, grads, BN statistics and RNG as they were.
                lr = optimizer.param_groups[0]["lr"]
                for row in probe_step(model, xb, yb, lr, probe_etas):
                    st.probe_rows.append({"step": step + 1, "epoch": plan.progress(step + 1), **row})
            if measure_ics:  # W^t and G before the update (the optimizer writes parameters in place)
                w_old, g_old = snapshot(model, shift_layers)
            optimizer.step()
            if measure_ics and math.isfinite(float(loss.detach())):
                # After the step: each layer's gradient with only the layers before it updated,
                # same batch and masks; parameters, grads, BN statistics and RNG are left as they are.
                sync()
                s0 = time.perf_counter()
                for row in ics_step(model, xb, yb, w_old, g_old, rng_before, layers=shift_layers):
                    st.ics_rows.append({"step": step + 1, "epoch": plan.progress(step + 1), **row})
                sync()
                spent = time.perf_counter() - s0
                st.ics_seconds += spent
                t0 += spent  # not training time
            if measure_ics:
                del w_old, g_old
            st.losses[step] = loss.detach()
            st.correct[step] = hits
            st.step_lr.append(optimizer.param_groups[0]["lr"])
            st.step, st.batch = step + 1, st.batch + 1
            step = st.step

            if on_cpu:  # a scalar check costs nothing on a CPU
                if not math.isfinite(float(st.losses[step - 1])):
                    st.status = "diverged"
                    st.diverged_step = st.step = step
                    break
            elif step % check_every == 0 or step == total:
                window = st.losses[max(0, step - check_every) : step]
                bad = (~torch.isfinite(window)).nonzero()
                if len(bad):
                    st.status = "diverged"
                    st.diverged_step = step - len(window) + int(bad[0]) + 1
                    st.step = st.diverged_step
                    break
            if step in evals:
                sync()
                st.train_seconds += time.perf_counter() - t0
                train_row = len(st.history)
                val = record_eval(step, final=step == total)
                log(f"epoch {plan.progress(step):.2f}/{epochs} step {step}/{total} batch {size}"
                    + (f" ({n_micro}x{micro})" if n_micro > 1 else "")
                    + f" train_loss {st.history[train_row]['loss']:.4f} val_loss {val['loss']:.4f} "
                    f"val_acc {val['acc']:.4f} ({st.train_seconds:.1f} s training)")
                last_progress = t0 = time.perf_counter()
            elif time.perf_counter() - last_progress > PROGRESS_EVERY_S:
                log(f"  ... step {step}/{total} loss {float(st.losses[step - 1]):.4f}")
                last_progress = time.perf_counter()
            if checkpoint is not None and checkpoint.enabled and step < total and checkpoint.due(step):
                sync()
                st.train_seconds += time.perf_counter() - t0
                save()
                t0 = time.perf_counter()
        if st.status == "diverged":
            break
        st.epoch, st.batch, st.perm = st.epoch + 1, 0, None
        if bn_snapshot:
            st.bn_rows.extend(bn_snapshot(st.step, float(st.epoch)))

    if st.status == "diverged":
        sync()
        st.train_seconds += time.perf_counter() - t0
        log(f"DIVERGED: non-finite training loss at step {st.diverged_step}/{total}")
        record_eval(st.step, final=True)  # shows what the diverged model does on val/test
        if bn_snapshot:
            st.bn_rows.extend(bn_snapshot(st.step, plan.progress(st.step)))
    done = st.step
    return LoopResult(
        status=st.status, diverged_step=st.diverged_step, steps_done=done, steps_per_epoch=plan.steps_in_epoch(0),
        batch_size=plan.sizes[0], train_seconds=st.train_seconds, eval_seconds=st.eval_seconds, history=st.history,
        step_loss=st.losses[:done].float().cpu(), step_grad_norm=st.grad_norms[:done].float().cpu(),
        step_lr=st.step_lr[:done], bn_rows=st.bn_rows, resumed_from=resumed_from,
        step_last_grad_change=st.last_changes[:done].float().cpu(), probe_rows=st.probe_rows,
        ics_rows=st.ics_rows, ics_seconds=st.ics_seconds,
        plan=plan, micro_batches=[micro_split[size][1] for size in plan.sizes[:done]],
    )
