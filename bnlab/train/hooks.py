"""Per-step instruments at run time: the hooks a run trained alone calls around its optimizer step.

An instrument measured during steps (bnlab/instruments.py, `runtime`: landscape
probes, ICS) has a hook class in its own module. SingleStepper
(bnlab/train/steppers.py) calls, on every step the hook is due (every
`hook.every`-th step; a step of several micro-batches only where the
instrument's declaration has with_micro_batches):

    before_forward(device)             before the step's forward (ICS: the RNG state, for the same masks)
    before_update(model, xb, yb, lr)   after backward, before optimizer.step() (probes; ICS: W^t and G)
    after_update(model, xb, yb, loss)  after optimizer.step(): the step's rows (its file's COLUMNS)

A hook with `excluded = True` has its after_update timed apart and left out
of the training time (ICS, as before). The Recorder keeps each instrument's
rows under its name, and the runner writes them to the instrument's declared
file (bnlab.train.run.write_run_folder), with an empty table where the run did
not take it. A new per-step instrument is its declaration and its hook class;
the stepper, the loop and the runner need no change.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

import torch

from bnlab.instruments import Instrument, instruments


class StepHook(Protocol):
    name: str  # its instrument's (bnlab/instruments.py)
    COLUMNS: tuple[str, ...]  # of its rows, after step and epoch, in its run-folder file
    excluded: bool  # after_update's time is not training time
    every: int  # due every k-th optimizer step (0: never, e.g. a model it cannot measure)

    def before_forward(self, device: torch.device) -> None: ...
    def before_update(self, model: torch.nn.Module, xb: torch.Tensor, yb: torch.Tensor, lr: float) -> None: ...
    def after_update(self, model: torch.nn.Module, xb: torch.Tensor, yb: torch.Tensor,
                     loss: torch.Tensor) -> list[dict]: ...


def runtime_class(inst: Instrument) -> Any:
    """The hook class its declaration names ("module:Class")."""
    module, _, name = inst.runtime.partition(":")
    return getattr(importlib.import_module(module), name)


def step_hooks(run: Any, model: torch.nn.Module) -> list[StepHook]:
    """The hooks of the per-step instruments `run` takes, in the registry's order, each built by its class's
    for_run(run, model)."""
    return [runtime_class(inst).for_run(run, model) for inst in instruments() if inst.runtime and inst.active(run)]


def row_tables() -> list[tuple[Instrument, tuple[str, ...]]]:
    """(instrument, its rows' columns after step and epoch) of every per-step instrument: the run folder holds
    each one's file, empty where the run did not take it."""
    return [(inst, runtime_class(inst).COLUMNS) for inst in instruments() if inst.runtime]
