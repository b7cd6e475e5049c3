"""What one optimizer step does, for one run or for the K members of a fused group.

The training loop (bnlab/train/loop.py) is the same for both: it hands a
stepper each step's sample indices ([K, B], K = 1 for one run) and gets back
per-member tensors of shape [K] (loss, correct predictions, gradient norm, the
output layer's gradient change), which its Recorder writes down. A stepper
also sets the learning rates, evaluates its members, gives a checkpoint its
model, optimizer and random-number states and takes them back on resume.

SingleStepper: one model and its optimizer, with what only a run trained
alone does: accumulated micro-batches, and the per-step instruments' hooks
(bnlab/train/hooks.py: loss-landscape probes, ICS) around its update.

FusedStepper: K runs of one architecture as one fused net
(bnlab/models/fused.py). Each member has its own optimizer (any torch.optim
one, built on the member's parameters), learning-rate schedule, L2 term and
dropout generator; a member that diverged is released (storage of its own
back) and left out of every later update. Micro-batches and instruments
declared not fusable are not fused (bnlab.fusion keeps such runs unfused).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Callable, Protocol

import torch
import torch.nn.functional as F

from bnlab.instruments import by_name
from bnlab.models.fused import FusedNet
from bnlab.schedules import accumulation
from bnlab.train.batches import BatchPlan
from bnlab.train.checkpoint import restore_rng_states, rng_states
from bnlab.train.evaluate import evaluate
from bnlab.train.hooks import StepHook
from bnlab.train.l2 import add_l2_gradient, l2_weights
from bnlab.train.probes import last_linear
from bnlab.train.tensors import Splits


@dataclass
class StepOut:
    """What one step gives the Recorder: tensors of shape [K], rows of a run trained alone."""

    loss: torch.Tensor  # training loss per member
    hits: torch.Tensor  # correct predictions per member (int64)
    grad_norm: torch.Tensor
    last_change: torch.Tensor | None  # ||g_t - g_{t-1}|| of the output layer; None on the first step
    # SingleStepper only: this step's rows per instrument (bnlab/train/hooks.py), and the seconds of those
    # whose time is not training time (ICS)
    rows: dict[str, list[dict]] = field(default_factory=dict)
    excluded_seconds: dict[str, float] = field(default_factory=dict)


class Stepper(Protocol):
    grouped: bool  # a fused group: members are saved one after another, and a diverged one alone
    models: list[torch.nn.Module]  # every member's own module

    def set_lr(self, step: int, active: list[int]) -> None: ...
    def step(self, step: int, idx: torch.Tensor, active: list[int]) -> StepOut: ...
    def lr(self, i: int) -> float: ...
    def micro(self, size: int) -> tuple[int, int]: ...  # (micro-batch, count) of a batch of `size`
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, which: list[int], batch: int) -> list[tuple[float, float]]: ...
    def release(self, i: int) -> None: ...
    def train(self) -> None: ...
    def checkpoint(self, i: int) -> dict: ...
    def last_grad(self, i: int) -> torch.Tensor | None: ...
    def restore(self, payloads: list[dict | None]) -> None: ...


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _grad_norm(params: list[torch.Tensor]) -> torch.Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def _set_lr(optimizer: torch.optim.Optimizer, lr_at: Callable[[int], float] | None, step: int, total: int) -> None:
    if lr_at is not None:
        lr = lr_at(min(step, total - 1))
        for group in optimizer.param_groups:
            group["lr"] = lr


class SingleStepper:
    """One run: one model and its optimizer (K = 1)."""

    grouped = False

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, data: Splits, plan: BatchPlan, *,
                 lr_at: Callable[[int], float] | None = None, max_micro_batch: int = 0,
                 hooks: Sequence[StepHook] = (), l2: float = 0.0, label_smoothing: float = 0.0) -> None:
        self.models, self.model, self.optimizer, self.data, self.total = [model], model, optimizer, data, plan.total
        self.lr_at, self.l2, self.label_smoothing = lr_at, l2, label_smoothing
        # (hook, whether its instrument is taken on steps of several micro-batches: its declaration)
        self.hooks = [(h, by_name(h.name).with_micro_batches) for h in hooks if h.every]
        # (micro-batch, count) of every batch size in the plan: one pass, or equal accumulated parts
        self.micro_split = {size: accumulation(size, max_micro_batch) if max_micro_batch else (size, 1)
                            for size in set(plan.sizes)}
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.output_layer = last_linear(model)
        self.decayed = l2_weights(model) if l2 else []
        self.prev_last_grad: torch.Tensor | None = None

    def set_lr(self, step: int, active: list[int]) -> None:
        _set_lr(self.optimizer, self.lr_at, step, self.total)

    def lr(self, i: int) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def micro(self, size: int) -> tuple[int, int]:
        return self.micro_split[size]

    def step(self, step: int, idx: torch.Tensor, active: list[int]) -> StepOut:
        model, device = self.model, idx.device
        micro, n_micro = self.micro_split[idx.shape[1]]
        xb, yb = self.data.train_x[idx[0]], self.data.train_y[idx[0]]
        for p in self.params:  # what zero_grad(set_to_none=True) does, without its ~35 us of wrapping per step
            p.grad = None
        due = [h for h, with_micro in self.hooks if (step + 1) % h.every == 0 and (n_micro == 1 or with_micro)]
        for hook in due:  # ICS: the RNG state before the forward, for the step's own dropout masks
            hook.before_forward(device)
        if n_micro == 1:
            logits = model(xb)
            loss = F.cross_entropy(logits, yb, label_smoothing=self.label_smoothing)
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
                part = F.cross_entropy(logits, ym, label_smoothing=self.label_smoothing) / n_micro
                part.backward()
                loss = loss + part.detach()
                hits = hits + (logits.argmax(dim=1) == ym).sum()
        if self.decayed:  # the gradient of J = loss + l2 * sum ||W||^2 (the recorded loss stays the loss)
            add_l2_gradient(self.decayed, self.l2)
        grad_norm = _grad_norm(self.params)
        layer = self.output_layer
        last_grad = torch.cat([layer.weight.grad.flatten()]
                              + ([layer.bias.grad.flatten()] if layer.bias is not None else []))
        change = None if self.prev_last_grad is None else torch.linalg.vector_norm(last_grad - self.prev_last_grad)
        self.prev_last_grad = last_grad
        for hook in due:  # before optimizer.step(): probes along this step's gradient; ICS: W^t and G
            hook.before_update(model, xb, yb, self.lr(0))
        self.optimizer.step()
        rows, excluded = {}, {}
        for hook in due:  # after the step (ICS: each layer's gradient with only the layers before it updated)
            if hook.excluded:  # timed apart: not training time
                sync(device)
                s0 = time.perf_counter()
                rows[hook.name] = hook.after_update(model, xb, yb, loss)
                sync(device)
                excluded[hook.name] = time.perf_counter() - s0
            else:
                rows[hook.name] = hook.after_update(model, xb, yb, loss)
        return StepOut(loss=loss.detach().reshape(1), hits=hits.reshape(1), grad_norm=grad_norm.reshape(1),
                       last_change=None if change is None else change.reshape(1), rows=rows, excluded_seconds=excluded)

    def evaluate(self, x, y, which, batch):
        return [evaluate(self.model, x, y, batch)]

    def release(self, i: int) -> None:
        pass  # a run alone stops with its divergence: nothing trains on beside it

    def train(self) -> None:
        self.model.train()

    def checkpoint(self, i: int) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "rng": rng_states()}

    def last_grad(self, i: int) -> torch.Tensor | None:
        return None if self.prev_last_grad is None else self.prev_last_grad.cpu()

    def restore(self, payloads: list[dict | None]) -> None:
        (payload,) = payloads
        if payload is not None:
            restore_rng_states(payload["rng"])
            saved = payload["loop"].prev_last_grad
            self.prev_last_grad = None if saved is None else saved.to(self.data.train_x.device)


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


class FusedStepper:
    """The K members of a fused net, each with its own optimizer, schedule, L2 term and dropout generator."""

    grouped = True

    def __init__(self, fused: FusedNet, optimizers: list[torch.optim.Optimizer], data: Splits, plan: BatchPlan, *,
                 lr_ats: list[Callable[[int], float] | None], l2s: list[float],
                 dropout_generators: list[torch.Generator], label_smoothing: float = 0.0) -> None:
        self.fused, self.models, self.optimizers = fused, fused.members, optimizers
        self.data, self.total = data, plan.total
        self.lr_ats, self.l2s, self.generators, self.label_smoothing = lr_ats, l2s, dropout_generators, label_smoothing
        self.grads = fused.bind_grads()  # fused gradients; members' grads are views of them
        self.out_w = next(t for kind, layer, _, t in reversed(fused.ops) if kind == "Linear")
        self.decayed = [l2_weights(m) if l2 else [] for m, l2 in zip(self.models, l2s)]
        self.prev_last: torch.Tensor | None = None  # [K, output layer's values]: the previous step's gradient

    def set_lr(self, step: int, active: list[int]) -> None:
        for i in active:
            _set_lr(self.optimizers[i], self.lr_ats[i], step, self.total)

    def lr(self, i: int) -> float:
        return self.optimizers[i].param_groups[0]["lr"]

    def micro(self, size: int) -> tuple[int, int]:
        return size, 1

    def step(self, step: int, idx: torch.Tensor, active: list[int]) -> StepOut:
        k, size = self.fused.k, idx.shape[1]
        xb, yb = self.data.train_x[idx], self.data.train_y[idx]  # [K, B, C, H, W], [K, B]
        torch._foreach_zero_(self.grads)
        logits = self.fused(xb)
        loss_k = F.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="none",
                                 label_smoothing=self.label_smoothing).view(k, size).mean(1)
        (loss_k.sum() if len(active) == k else loss_k[active].sum()).backward()
        for i in active:
            if self.decayed[i]:
                add_l2_gradient(self.decayed[i], self.l2s[i])
        with torch.no_grad():
            hits = (logits.argmax(dim=2) == yb).sum(1)
            grad_norm = _per_member_sq_norms(self.grads, k).sqrt()
            out_w = self.out_w
            last = torch.cat([out_w["weight"].grad.reshape(k, -1)]
                             + ([out_w["bias"].grad.reshape(k, -1)] if "bias" in out_w else []), dim=1)
            change = None if self.prev_last is None else torch.linalg.vector_norm(last - self.prev_last, dim=1)
            self.prev_last = last.clone()
        for i in active:
            self.optimizers[i].step()
        return StepOut(loss=loss_k.detach(), hits=hits, grad_norm=grad_norm, last_change=change)

    def evaluate(self, x, y, which, batch):
        scores = evaluate_fused(self.fused, x, y, batch)
        return [scores[i] for i in which]

    def release(self, i: int) -> None:
        self.fused.release(i)
        for p in self.models[i].parameters():
            p.grad = None

    def train(self) -> None:
        self.fused.train()

    def checkpoint(self, i: int) -> dict:
        return {"model": {name: t.detach().clone() for name, t in self.models[i].state_dict().items()},
                "optimizer": self.optimizers[i].state_dict(), "rng": {"torch": torch.get_rng_state()},
                "dropout_state": self.generators[i].get_state()}

    def last_grad(self, i: int) -> torch.Tensor | None:
        return None if self.prev_last is None else self.prev_last[i].cpu()

    def restore(self, payloads: list[dict | None]) -> None:
        for generator, payload in zip(self.generators, payloads):
            if payload is not None:
                generator.set_state(payload["dropout_state"])
        if all(p is not None and p["loop"].prev_last_grad is not None for p in payloads):
            self.prev_last = torch.stack([p["loop"].prev_last_grad for p in payloads]).to(self.data.train_x.device)
