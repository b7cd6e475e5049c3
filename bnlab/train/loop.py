"""The training loop: randperm batches over device tensors, periodic evaluation.

A NaN or infinite training loss ends the run with status "diverged" at that
step: a result to report, not an error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from bnlab.train.evaluate import evaluate
from bnlab.train.tensors import Splits

PROGRESS_EVERY_S = 30.0  # a progress line at least this often during long epochs


@dataclass
class LoopResult:
    status: str  # "ok" or "diverged"
    diverged_step: int | None
    steps_done: int
    steps_per_epoch: int
    batch_size: int
    train_seconds: float  # time spent in optimizer steps, evaluation excluded
    history: list[dict] = field(default_factory=list)
    step_loss: torch.Tensor | None = None  # [steps_done] float32
    step_grad_norm: torch.Tensor | None = None
    step_lr: list[float] = field(default_factory=list)
    bn_rows: list[dict] = field(default_factory=list)


def eval_steps(steps_per_epoch: int, epochs: int, evals_per_epoch: int) -> list[int]:
    """Optimizer steps after which to evaluate: evenly spread, epoch ends included."""
    per = min(evals_per_epoch, steps_per_epoch)
    points = {round(k * steps_per_epoch / per) for k in range(1, per * epochs + 1)}
    return sorted(points)


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
) -> LoopResult:
    device = data.train_x.device
    n = len(data.train_x)
    batch_size = min(batch_size, n)
    steps_per_epoch = n // batch_size  # the last partial batch is dropped: BN needs full batches
    total = steps_per_epoch * epochs
    evals = set(eval_steps(steps_per_epoch, epochs, evals_per_epoch))
    # Data order has its own generator, so changing the init never changes the order.
    order = torch.Generator(device="cpu").manual_seed(order_seed)
    params = [p for p in model.parameters() if p.requires_grad]
    check_every = 1 if device.type == "cpu" else 25  # a finite check syncs the GPU

    losses = torch.empty(total, device=device)
    grad_norms = torch.empty(total, device=device)
    correct = torch.empty(total, device=device, dtype=torch.int64)
    result = LoopResult("ok", None, 0, steps_per_epoch, batch_size, 0.0)
    bn_rows = result.bn_rows

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    eval_batch = 128 if device.type == "cpu" else 1024  # measured: small batches are faster on a CPU

    def record_eval(step: int, prev: int, wall0: float, final: bool = False):
        epoch = step / steps_per_epoch
        lr = optimizer.param_groups[0]["lr"]
        base = {"step": step, "epoch": epoch, "lr": lr, "train_seconds": result.train_seconds,
                "wall_seconds": time.perf_counter() - wall0}
        if step > prev:
            result.history.append({**base, "split": "train",
                                   "loss": float(losses[prev:step].double().mean()),
                                   "acc": float(correct[prev:step].sum()) / ((step - prev) * batch_size)})
        loss, acc = evaluate(model, data.val_x, data.val_y, eval_batch)
        result.history.append({**base, "split": "val", "loss": loss, "acc": acc})
        val_row = result.history[-1]
        if final or eval_test == "every":
            loss, acc = evaluate(model, data.test_x, data.test_y, eval_batch)
            result.history.append({**base, "split": "test", "loss": loss, "acc": acc})
        return val_row

    wall0 = time.perf_counter()
    record_eval(0, 0, wall0)
    if bn_snapshot:
        bn_rows.extend(bn_snapshot(0, 0.0))
    model.train()
    step, prev_eval, last_progress = 0, 0, time.perf_counter()
    t0 = time.perf_counter()
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=order).to(device)
        for b in range(steps_per_epoch):
            idx = perm[b * batch_size : (b + 1) * batch_size]
            xb, yb = data.train_x[idx], data.train_y[idx]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norms[step] = _grad_norm(params)
            optimizer.step()
            losses[step] = loss.detach()
            correct[step] = (logits.argmax(dim=1) == yb).sum()
            result.step_lr.append(optimizer.param_groups[0]["lr"])
            step += 1

            if step % check_every == 0 or step == total:
                window = losses[max(0, step - check_every) : step]
                bad = (~torch.isfinite(window)).nonzero()
                if len(bad):
                    result.status = "diverged"
                    result.diverged_step = step - len(window) + int(bad[0]) + 1
                    step = result.diverged_step
                    break
            if step in evals:
                sync()
                result.train_seconds += time.perf_counter() - t0
                train_row = len(result.history)
                val = record_eval(step, prev_eval, wall0, final=step == total)
                prev_eval = step
                log(f"epoch {step / steps_per_epoch:.2f}/{epochs} step {step}/{total} "
                    f"train_loss {result.history[train_row]['loss']:.4f} val_loss {val['loss']:.4f} "
                    f"val_acc {val['acc']:.4f} ({result.train_seconds:.1f} s training)")
                last_progress = t0 = time.perf_counter()
            elif time.perf_counter() - last_progress > PROGRESS_EVERY_S:
                log(f"  ... step {step}/{total} loss {float(losses[step - 1]):.4f}")
                last_progress = time.perf_counter()
        if result.status == "diverged":
            break
        if bn_snapshot:
            bn_rows.extend(bn_snapshot(step, float(epoch + 1)))

    if result.status == "diverged":
        sync()
        result.train_seconds += time.perf_counter() - t0
        log(f"DIVERGED: non-finite training loss at step {result.diverged_step}/{total}")
        record_eval(step, prev_eval, wall0, final=True)  # shows what the diverged model does on val/test
        if bn_snapshot:
            bn_rows.extend(bn_snapshot(step, step / steps_per_epoch))
    result.steps_done = step
    result.step_loss = losses[:step].float().cpu()
    result.step_grad_norm = grad_norms[:step].float().cpu()
    result.step_lr = result.step_lr[:step]
    return result
