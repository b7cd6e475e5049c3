"""The training loop of a fused group: K runs of one architecture and batch plan, stepped together.

Each member is its own run: its own data order (a permutation from its own
generator, gathered as one [K, B] index tensor), its own optimizer (any
torch.optim one, built on the member's parameters), learning-rate schedule,
L2 term, dropout masks (bnlab/models/fused.py) and divergence: a member whose
training loss turns non-finite stops at that step, is evaluated as a diverged
run is, gets storage of its own back and is left out of every later update,
while the others go on. What it records (history rows, per-step loss, gradient
norm, the output layer's gradient change, BN gamma/beta at epoch ends) is what
bnlab/train/loop.py records for the same run trained alone, so each member
writes an ordinary run folder.

Not handled here (bnlab.fusion keeps such runs unfused): loss-landscape
probes, ICS, accumulated micro-batches.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import torch
import torch.nn.functional as F

from bnlab.models.fused import FusedNet
from bnlab.train.batches import BatchPlan
from bnlab.train.checkpoint import CheckpointPolicy, save_checkpoint
from bnlab.train.evaluate import evaluate
from bnlab.train.l2 import add_l2_gradient, l2_weights
from bnlab.train.loop import PROGRESS_EVERY_S, LoopResult, LoopState
from bnlab.train.tensors import Splits


@dataclass
class Member:
    """One run of a fused group: what differs between members."""

    model: torch.nn.Module  # the member's own module (its tensors are views into the fused net's)
    optimizer: torch.optim.Optimizer
    order_seed: int
    dropout_generator: torch.Generator
    lr_at: Callable[[int], float] | None = None
    l2: float = 0.0
    bn_snapshot: Callable[[int, float], list[dict]] | None = None
    checkpoint: CheckpointPolicy | None = None
    checkpoint_extra: dict = field(default_factory=dict)
    resume: dict | None = None  # its loaded checkpoint payload (model and optimizer already restored)
    state: LoopState = field(default_factory=LoopState)
    order: torch.Generator | None = None


@torch.inference_mode()
def evaluate_fused(fused: FusedNet, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> list[tuple[float, float]]:
    """Per member (mean cross-entropy, accuracy) over (x, y), every member on the same images."""
    was_training = fused.training
    fused.eval()
    loss_sum = torch.zeros(fused.k, device=x.device, dtype=torch.float64)
    correct = torch.zeros(fused.k, device=x.device, dtype=torch.int64)
    for start in range(0, len(x), batch_size):
        logits = fused(x[start : start + batch_size])  # [K, B, classes]
        target = y[start : start + batch_size]
        losses = F.cross_entropy(logits.flatten(0, 1), target.repeat(fused.k), reduction="none")
        loss_sum += losses.view(fused.k, -1).double().sum(1)
        correct += (logits.argmax(dim=2) == target).sum(1)
    fused.train(was_training)
    n = max(len(x), 1)
    return [(float(s) / n, int(c) / n) for s, c in zip(loss_sum.tolist(), correct.tolist())]


def _per_member_sq_norms(grads: list[torch.Tensor], k: int) -> torch.Tensor:
    """[K] squared gradient norms: a fused tensor's rows are its members' blocks in order."""
    return torch.stack([g.reshape(k, -1).pow(2).sum(1) for g in grads]).sum(0)


def train_fused_loop(
    fused: FusedNet,
    members: list[Member],
    data: Splits,
    plan: BatchPlan,
    *,
    evals_per_epoch: int,
    eval_test: str = "final",
    label_smoothing: float = 0.0,
    log: Callable[[str], None] = print,
    names: list[str] | None = None,
) -> list[LoopResult]:
    """Train every member for the plan; one LoopResult per member, as train_loop would give for it alone."""
    k = fused.k
    device = data.train_x.device
    n, total = plan.n, plan.total
    evals = set(plan.eval_steps(evals_per_epoch))
    names = names or [f"member {i}" for i in range(k)]
    eval_batch = 128 if device.type == "cpu" else 1024
    on_cpu = device.type == "cpu"
    check_every = 25
    grads = fused.bind_grads()  # fused gradients; members' grads are views of them
    out_w = next(t for kind, layer, _, t in reversed(fused.ops) if kind == "Linear")
    decayed = [l2_weights(m.model) if m.l2 else [] for m in members]

    # group-wide per-step records [K, total]; each member's row becomes its LoopState's tensors
    resumed = [None if m.resume is None else m.resume["loop"].step for m in members]
    for m in members:
        m.order = torch.Generator(device="cpu").manual_seed(m.order_seed)
        if m.resume is not None:
            m.state = m.resume["loop"]
            m.order.set_state(m.resume["order_state"])
            m.dropout_generator.set_state(m.resume["dropout_state"])
    losses = torch.empty(k, total, device=device)
    grad_norms = torch.empty(k, total, device=device)
    correct = torch.zeros(k, total, device=device, dtype=torch.int64)
    last_changes = torch.full((k, total), float("nan"), device=device)
    prev_last: torch.Tensor | None = None  # [K, output layer's values]: the previous step's gradient
    for i, m in enumerate(members):
        if m.resume is not None:
            st = m.state
            losses[i], grad_norms[i], correct[i], last_changes[i] = (
                t.to(device) for t in (st.losses, st.grad_norms, st.correct, st.last_changes))
    if all(m.resume is not None and m.state.prev_last_grad is not None for m in members):
        prev_last = torch.stack([m.state.prev_last_grad for m in members]).to(device)
    active = [i for i, m in enumerate(members) if m.state.status == "ok"]
    steps_now = {members[i].state.step for i in active}
    if len(steps_now) > 1:
        raise ValueError(f"fused members resume from different steps {sorted(steps_now)}")
    step = steps_now.pop() if steps_now else total
    if any(r is not None for r in resumed):
        log(f"resumed {sum(r is not None for r in resumed)} of {k} fused runs from checkpoints at step {step}/{total}")
    wall0 = time.perf_counter() - max((m.state.wall_seconds for m in members), default=0.0)
    train_seconds = max((members[i].state.train_seconds for i in active), default=0.0)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def lr_of(i: int) -> float:
        return members[i].optimizer.param_groups[0]["lr"]

    def set_lrs(at: int) -> None:
        for i in active:
            if members[i].lr_at is not None:
                lr = members[i].lr_at(min(at, total - 1))
                for group in members[i].optimizer.param_groups:
                    group["lr"] = lr

    def base_row(i: int, at: int) -> dict:
        return {"step": at, "epoch": plan.progress(at), "lr": lr_of(i), "train_seconds": train_seconds,
                "wall_seconds": time.perf_counter() - wall0}

    def train_row(i: int, at: int) -> None:
        st = members[i].state
        if at > st.prev_eval:
            seen = sum(plan.sizes[st.prev_eval:at])
            st.history.append({**base_row(i, at), "split": "train",
                               "loss": float(losses[i, st.prev_eval:at].double().mean()),
                               "acc": float(correct[i, st.prev_eval:at].sum()) / seen, "images": seen})

    def record_evals(which: list[int], at: int, final: bool) -> dict[int, float]:
        """Curve points (and at the end the whole splits) of the members in `which`, one fused pass each."""
        nonlocal train_seconds
        for i in which:
            train_row(i, at)
        e0 = time.perf_counter()
        splits = ["val"] + (["test"] if eval_test == "every" else [])
        curve = {}
        for split in splits:
            scores = evaluate_fused(fused, *data.curve(split), eval_batch)
            for i in which:
                members[i].state.history.append({**base_row(i, at), "split": split, "loss": scores[i][0],
                                                 "acc": scores[i][1], "images": len(data.curve(split)[0])})
                curve.setdefault(i, {})[split] = members[i].state.history[-1]
        if final:
            for split in ("val", "test"):
                if split in splits and data.curve_is_whole(split):
                    for i in which:
                        members[i].state.history.append({**curve[i][split], "split": f"{split}_full"})
                else:
                    x, y = data.whole(split)
                    scores = evaluate_fused(fused, x, y, eval_batch)
                    for i in which:
                        members[i].state.history.append({**base_row(i, at), "split": f"{split}_full",
                                                         "loss": scores[i][0], "acc": scores[i][1], "images": len(x)})
        spent = time.perf_counter() - e0
        for i in which:
            members[i].state.eval_seconds += spent
            members[i].state.prev_eval = at
        return {i: curve[i]["val"]["acc"] for i in which}

    def stop_diverged(i: int, at: int) -> None:
        """Member i diverged at step `at`: its last evaluation alone, its own storage back, no more updates."""
        m, st = members[i], members[i].state
        st.status, st.diverged_step, st.step = "diverged", at, at
        st.train_seconds = train_seconds
        active.remove(i)
        log(f"{names[i]}: DIVERGED: non-finite training loss at step {at}/{total}; the other "
            f"{len(active)} go on")
        train_row(i, at)
        e0 = time.perf_counter()
        for split in ("val", "test"):  # what train_loop's final record_eval writes, from the member alone
            row = None
            if split == "val" or eval_test == "every":
                x, y = data.curve(split)
                loss, acc = evaluate(m.model, x, y, eval_batch)
                row = {**base_row(i, at), "split": split, "loss": loss, "acc": acc, "images": len(x)}
                st.history.append(row)
            if row is not None and data.curve_is_whole(split):
                st.history.append({**row, "split": f"{split}_full"})
            else:
                x, y = data.whole(split)
                loss, acc = evaluate(m.model, x, y, eval_batch)
                st.history.append({**base_row(i, at), "split": f"{split}_full", "loss": loss, "acc": acc,
                                   "images": len(x)})
        st.eval_seconds += time.perf_counter() - e0
        st.prev_eval = at
        if m.bn_snapshot:
            st.bn_rows.extend(m.bn_snapshot(at, plan.progress(at)))
        fused.release(i)
        for p in m.model.parameters():
            p.grad = None
        if m.checkpoint is not None and m.checkpoint.enabled:
            save(i)

    def member_state(i: int) -> LoopState:
        st = members[i].state
        return replace(st, losses=losses[i].cpu(), grad_norms=grad_norms[i].cpu(), correct=correct[i].cpu(),
                       last_changes=last_changes[i].cpu(),
                       prev_last_grad=None if prev_last is None else prev_last[i].cpu())

    def save(i: int) -> None:
        m = members[i]
        m.state.wall_seconds = time.perf_counter() - wall0
        if m.state.status == "ok":
            m.state.train_seconds = train_seconds
        save_checkpoint(m.checkpoint.path, {
            **m.checkpoint_extra,
            "model": {name: t.detach().clone() for name, t in m.model.state_dict().items()},
            "optimizer": m.optimizer.state_dict(), "rng": {"torch": torch.get_rng_state()},
            "order_state": m.order.get_state(), "dropout_state": m.dropout_generator.get_state(),
            "loop": member_state(i),
        }, keep_previous=True)
        m.checkpoint.saved()

    set_lrs(step)
    if step == 0:
        record_evals(active, 0, final=False)
        for i in active:
            if members[i].bn_snapshot:
                members[i].state.bn_rows.extend(members[i].bn_snapshot(0, 0.0))
    fused.train()
    last_progress = t0 = time.perf_counter()
    while step < total and active:
        # the members' own epoch, not the step's: a checkpoint on an epoch boundary is written before that
        # epoch's end is processed below, so a run resumed from it finishes the old epoch (new order, BN
        # snapshot) before the next one starts, as the uninterrupted run did
        epoch = members[active[0]].state.epoch
        for i in active:
            st = members[i].state
            if st.perm is None:
                st.perm = torch.randperm(n, generator=members[i].order)
        # a diverged member's rows still flow through the fused net (its block is frozen and ignored)
        perms = torch.stack([members[i].state.perm if members[i].state.perm is not None else members[active[0]].state.perm
                             for i in range(k)]).to(device)
        while step < plan.epoch_starts[epoch + 1] and active:
            set_lrs(step)
            size, offset = plan.sizes[step], plan.offsets[step]
            idx = perms[:, offset : offset + size]
            xb, yb = data.train_x[idx], data.train_y[idx]  # [K, B, C, H, W], [K, B]
            torch._foreach_zero_(grads)
            logits = fused(xb)
            loss_k = F.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="none",
                                     label_smoothing=label_smoothing).view(k, size).mean(1)
            (loss_k.sum() if len(active) == k else loss_k[active].sum()).backward()
            for i in active:
                if decayed[i]:
                    add_l2_gradient(decayed[i], members[i].l2)
            with torch.no_grad():
                losses[:, step] = loss_k
                correct[:, step] = (logits.argmax(dim=2) == yb).sum(1)
                grad_norms[:, step] = _per_member_sq_norms(grads, k).sqrt()
                last = torch.cat([out_w["weight"].grad.reshape(k, -1)]
                                 + ([out_w["bias"].grad.reshape(k, -1)] if "bias" in out_w else []), dim=1)
                if prev_last is not None:
                    last_changes[:, step] = torch.linalg.vector_norm(last - prev_last, dim=1)
                prev_last = last.clone()
            for i in active:
                members[i].optimizer.step()
                members[i].state.step_lr.append(lr_of(i))
            step += 1
            for i in active:
                st = members[i].state
                st.step = step
                st.batch = step - plan.epoch_starts[epoch]
            if on_cpu:
                bad = [i for i in active if not math.isfinite(float(losses[i, step - 1]))]
                for i in bad:
                    sync()
                    stop_diverged(i, step)
            elif step % check_every == 0 or step == total:
                window = losses[:, max(0, step - check_every) : step]
                finite = torch.isfinite(window).cpu()
                for i in list(active):
                    if not bool(finite[i].all()):
                        first_bad = int((~finite[i]).nonzero()[0])
                        stop_diverged(i, step - window.shape[1] + first_bad + 1)
            if not active:
                break
            if step in evals:
                sync()
                train_seconds += time.perf_counter() - t0
                vals = ", ".join(f"{acc:.3f}" for acc in record_evals(active, step, final=step == total).values())
                log(f"epoch {plan.progress(step):.2f}/{plan.epochs} step {step}/{total} batch {size}: "
                    f"{len(active)} fused runs, val_acc {vals} ({train_seconds:.1f} s training)")
                last_progress = t0 = time.perf_counter()
            elif time.perf_counter() - last_progress > PROGRESS_EVERY_S:
                log(f"  ... step {step}/{total}")
                last_progress = time.perf_counter()
            due = [i for i in active if members[i].checkpoint is not None and members[i].checkpoint.enabled
                   and step < total and members[i].checkpoint.due(step)]
            if due:
                sync()
                train_seconds += time.perf_counter() - t0
                for i in active:  # all together: members resume from one step
                    save(i)
                t0 = time.perf_counter()
        if step == plan.epoch_starts[epoch + 1]:
            for i in active:
                st = members[i].state
                st.epoch, st.batch, st.perm = epoch + 1, 0, None
                if members[i].bn_snapshot:
                    st.bn_rows.extend(members[i].bn_snapshot(step, float(epoch + 1)))
    sync()
    train_seconds += time.perf_counter() - t0 if active else 0.0
    results = []
    for i, m in enumerate(members):
        st = m.state
        if st.status == "ok":
            st.train_seconds = train_seconds
        done = st.step
        results.append(LoopResult(
            status=st.status, diverged_step=st.diverged_step, steps_done=done,
            steps_per_epoch=plan.steps_in_epoch(0), batch_size=plan.sizes[0], train_seconds=st.train_seconds,
            eval_seconds=st.eval_seconds, history=st.history, step_loss=losses[i, :done].float().cpu(),
            step_grad_norm=grad_norms[i, :done].float().cpu(), step_lr=st.step_lr[:done], bn_rows=st.bn_rows,
            resumed_from=resumed[i],
            step_last_grad_change=last_changes[i, :done].float().cpu(), plan=plan,
            micro_batches=[1] * done,
        ))
    return results
