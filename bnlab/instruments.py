"""The instrument registry: what a run measures besides its training curve, declared once.

An instrument is a measurement taken while a run trains or when it ends
(landscape probes, internal covariate shift, the co-adaptation proxy, gradient
norms, the output layer's gradient change, BN parameter snapshots). Like an
analysis (bnlab/analyses/registry.py), each one is a declaration that the
plan-level code reads instead of keeping its own lists:

- `switch`: the run parameter that turns it on (None: every run takes it) and
  `params`, every run parameter it reads (RunSpec fields);
- `files`: the run-folder files it writes (bnlab.runfolder's names, as text: runfolder
  loads pandas, which the plan does not need; tests/test_instruments.py checks them);
- `fusable`: whether a run that takes it may train in a fused group
  (bnlab.fusion refuses the run otherwise, naming the instrument);
- `with_micro_batches`: whether it is taken on a step accumulated from
  micro-batches (False: such steps are skipped, by the trainer and the cost);
- `with_batch_growth`: whether a run with a growing batch may take it
  (bnlab.config refuses the config otherwise);
- `when` and `interval`: a per-step instrument ("step") measures every
  `interval`-th optimizer step (the run parameter; every step without one),
  others at epoch ends ("epoch") or once at the end ("end");
- `extra_passes(run, arch)`: the extra forward/backward passes per sample of a
  measured step (bnlab.cost; `arch` is its ArchCost) and
  `eval_images(run, curve_val)`: the extra images it evaluates, forward only;
- `implementation`: where its runtime code lives (a module, for readers; the
  plan never imports it), and `runtime`, for a per-step instrument taken
  around the optimizer step of a run trained alone, its hook class
  ("module:Class", bnlab/train/hooks.py): the stepper calls it, the Recorder
  keeps its rows and the runner writes them to its one declared file.

Torch-free, like the rest of the plan layer: the Snakefile and bnlab.fusion
import this when the workflow is parsed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any



def _no_passes(run: Any, arch: Any) -> int:
    return 0


def _no_images(run: Any, curve_val: int) -> int:
    return 0


@dataclass(frozen=True)
class Instrument:
    name: str
    description: str  # what it is, as a reason or a log line names it
    switch: str | None  # the run parameter that turns it on; None: every run takes it
    params: tuple[str, ...]  # every run parameter it reads (RunSpec fields)
    files: tuple[str, ...]  # run-folder files it writes (bnlab.runfolder's names)
    fusable: bool  # may a run that takes it train in a fused group
    with_micro_batches: bool  # taken on steps accumulated from micro-batches (False: skipped there)
    with_batch_growth: bool = True  # may a run with a growing batch take it (config refuses it otherwise)
    when: str = "step"  # "step", "epoch" (at epoch ends and step 0) or "end" (once, after training)
    interval: str | None = None  # a per-step instrument's run parameter "every k-th step" (None: every step)
    extra_passes: Callable[[Any, Any], int] = _no_passes  # (run, ArchCost) -> passes per sample, measured step
    eval_images: Callable[[Any, int], int] = _no_images  # (run, curve_val) -> extra evaluated images
    implementation: str = ""  # the module of its runtime code
    runtime: str = ""  # "module:Class" of its per-step hook (bnlab/train/hooks.py), if it has one

    def active(self, run: Any) -> bool:
        """Whether `run` (a RunSpec, or any object with the run parameters as attributes) takes it."""
        return self.switch is None or bool(getattr(run, self.switch))

    def every(self, run: Any) -> int:
        """Measured every k-th optimizer step (0: not per step, or not taken by this run)."""
        if self.when != "step" or not self.active(run):
            return 0
        return int(getattr(run, self.interval)) if self.interval else 1

    def measures(self, run: Any, step: int, n_micro: int) -> bool:
        """Whether it is taken on optimizer step `step` (1-based) of `run`, a step of n_micro passes."""
        k = self.every(run)
        return k > 0 and step % k == 0 and (n_micro == 1 or self.with_micro_batches)


def _probe_passes(run: Any, arch: Any) -> int:
    # one forward/backward per step size, + the base gradient again under the probe's masks with dropout
    return len(run.probe_multipliers) + (1 if arch.dropout else 0)


def _ics_passes(run: Any, arch: Any) -> int:
    return arch.ics_layers  # one per measured layer (an upper bound: its backward stops at that layer)


def _coadapt_images(run: Any, curve_val: int) -> int:
    return curve_val  # one forward over the validation curve subset, at the end


INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument(
        name="probes", description="loss-landscape probes", switch="probe_every",
        params=("probe_every", "probe_etas"), files=("probes.parquet",), fusable=False, with_micro_batches=False,
        with_batch_growth=False, interval="probe_every", extra_passes=_probe_passes,
        implementation="bnlab.train.probes", runtime="bnlab.train.probes:ProbeHook"),
    Instrument(
        name="ics", description="ICS measurement", switch="ics_every", params=("ics_every",),
        files=("ics.parquet",), fusable=False, with_micro_batches=False, interval="ics_every",
        extra_passes=_ics_passes, implementation="bnlab.train.ics", runtime="bnlab.train.ics:ICSHook"),
    Instrument(
        name="coadaptation", description="co-adaptation proxy", switch="coadapt", params=("coadapt",),
        files=("coadaptation.json",), fusable=True, with_micro_batches=True, when="end",
        eval_images=_coadapt_images, implementation="bnlab.train.coadapt"),
    Instrument(
        name="grad_norm", description="gradient norm", switch=None, params=(), files=("steps.parquet",),
        fusable=True, with_micro_batches=True, implementation="bnlab.train.steppers"),
    Instrument(
        name="last_grad_change", description="output layer's gradient change", switch=None, params=(),
        files=("steps.parquet",), fusable=True, with_micro_batches=True, implementation="bnlab.train.steppers"),
    Instrument(
        name="bn_params", description="BN parameter snapshots", switch=None, params=(), files=("bn_params.parquet",),
        fusable=True, with_micro_batches=True, when="epoch", implementation="bnlab.train.run"),
)


def instruments() -> tuple[Instrument, ...]:
    """Every registered instrument (read at call time: a test may register one of its own)."""
    return INSTRUMENTS


def by_name(name: str) -> Instrument:
    for inst in instruments():
        if inst.name == name:
            return inst
    raise KeyError(f"no instrument '{name}'; registered: {', '.join(i.name for i in instruments())}")


def step_intervals() -> tuple[str, ...]:
    """The run parameters that are step intervals of an instrument (a toy config shrinks them)."""
    return tuple(inst.interval for inst in instruments() if inst.interval)
