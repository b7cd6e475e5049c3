"""Which runs train together as one fused job (execution.fuse), decided when the workflow is planned.

Runs fuse when they share everything that shapes the computation: dataset,
model and widths, BN placement, activation, batch plan (batch size and its
growth, epochs, training subset), evaluation settings and the training loss.
They may differ in everything a member keeps to itself (bnlab/train/steppers.py, FusedStepper):
seed, init and its scale, optimizer and its settings, learning rate and its
schedule, dropout rates (zero or not alike: a zero rate has no dropout layer),
weight decay and the L2 term. Runs that take an instrument declared not
fusable (bnlab/instruments.py: landscape probes, ICS), a memory cap on the
batch or bnlab's own BN stay unfused, and so do models with branches
(FUSIBLE_MODELS; tests/test_fused.py checks this list against the models that
bnlab.models.fused accepts).

Torch-free: the Snakefile imports this when it is parsed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from bnlab.instruments import instruments
from bnlab.params import RunSpec, search_ref

FUSIBLE_MODELS = ("cnn", "cnn2", "lenet5", "mlp", "vgg_a")

# what members may differ in; every other run parameter must be equal within a group
MEMBER_PARAMS = ("seed", "init", "init_scale", "optimizer", "lr", "lr_schedule", "lr_min", "lr_period",
                 "lr_gamma", "momentum", "weight_decay", "l2", "dropout_in", "dropout_hidden")
DEFAULT_CUDA_MEMBERS = 8  # fuse: auto on a GPU
# fuse: auto on a CPU: only MLPs this narrow, up to this many per job. There a fused step of K small MLPs
# beats K steps (per-step overhead and job start-up saved), while a grouped convolution is slower than
# K separate ones and wide layers leave nothing to save (bench/fused.py; README, "On a GPU workstation")
CPU_MAX_WIDTH = 100
DEFAULT_CPU_MEMBERS = 16


@dataclass(frozen=True)
class FusedGroup:
    runs: tuple[RunSpec, ...]  # the members its job trains
    planned: tuple[RunSpec, ...] = ()  # every member the config puts in it (default: runs); they name it

    @property
    def name(self) -> str:
        """A stable name (a Snakemake rule name): a hash of the planned members' folders."""
        text = "\n".join(r.relative_dir() for r in self.planned or self.runs)
        return "fused_" + hashlib.sha256(text.encode()).hexdigest()[:12]

    def left_to_train(self, finished: Callable[[RunSpec], bool]) -> FusedGroup | None:
        """The group's job for the members not yet finished, under the planned group's name; None when
        fewer than two are left (a single run trains as itself).

        Groups are cut from every run of the config, finished or not, so the same config gives the same
        groups and names on every read of the workflow: on the submitting machine and, later, on a
        cluster node after other groups have finished. A finished member is never an output again, so
        adding a seed never retrains a run that is done.
        """
        left = tuple(r for r in self.runs if not finished(r))
        return FusedGroup(left, self.planned or self.runs) if len(left) > 1 else None


def unfusible_reason(run: RunSpec) -> str | None:
    """Why this run trains alone, or None if it may join a fused group."""
    if run.model not in FUSIBLE_MODELS:
        return f"model {run.model} has branches"
    if run.bn_impl != "torch":
        return f"bn_impl {run.bn_impl}"
    for inst in instruments():  # an instrument that cannot be fused says so in its declaration
        if inst.active(run) and not inst.fusable:
            return inst.description
    if run.batch_mem_mb != "na":
        return "batch_mem_mb (accumulated micro-batches)"
    return None


def fusion_key(run: RunSpec) -> tuple:
    """Runs with equal keys can be fused."""
    strings = run.as_strings()
    shared = tuple((k, v) for k, v in sorted(strings.items()) if k not in MEMBER_PARAMS)
    # a picked rate makes the pick table an input of the job; members share their jobs' inputs, so that
    # a finished member, planned alone later, has the inputs it was made from (no rerun trigger)
    picks = (tuple(sorted(set(run.picks.values()))), tuple(sorted({search_ref(v)[2] for v in run.searches.values()})))
    return shared + (("dropout_in>0", run.dropout_in > 0), ("dropout_hidden>0", run.dropout_hidden > 0),
                     ("picks", picks))


def fusion_policy(execution: dict) -> tuple[int, bool]:
    """(most runs per job, small MLPs only) from execution.fuse and device.

    auto: DEFAULT_CUDA_MEMBERS of any fusible run where the jobs train on a GPU (device cuda, or device auto
    with gpus_per_run > 0: full.yaml on a GPU workstation or a cluster); elsewhere DEFAULT_CPU_MEMBERS of
    small MLPs only. A number: that many of any fusible run; 1 = every run alone.

    Only the config decides, never the machine: a cluster job re-reads the workflow on its node, and its
    fused rule must have the name the login node (no GPU there) gave it.
    """
    fuse = execution.get("fuse", "auto")
    if fuse == "auto":
        device = execution.get("device")
        if device == "cuda" or (device == "auto" and int(execution.get("gpus_per_run", 0)) > 0):
            return DEFAULT_CUDA_MEMBERS, False
        # small MLPs gain on a CPU: 1.2-1.5x per step (bench/fused.py), and 3.1x for the 41 runs of the
        # default config's L2 search, where 3 jobs replace 41 job start-ups
        return DEFAULT_CPU_MEMBERS, True
    return int(fuse), False


def small_mlp(run: RunSpec) -> bool:
    widths = run.widths_list
    return run.model == "mlp" and widths is not None and all(w <= CPU_MAX_WIDTH for w in widths)


def fused_groups(runs: list[RunSpec], max_members: int, small_mlps_only: bool = False) -> list[FusedGroup]:
    """Runs that share a fusion key, in folder order, cut into groups of at most max_members (2 or more)."""
    if max_members < 2:
        return []
    by_key: dict[tuple, list[RunSpec]] = {}
    for run in sorted(runs, key=lambda r: r.relative_dir()):
        if unfusible_reason(run) is None and (small_mlp(run) or not small_mlps_only):
            by_key.setdefault(fusion_key(run), []).append(run)
    groups = []
    for members in by_key.values():
        # equal shares (9 runs with at most 8 -> 5 + 4, not 8 + 1): no group is left nearly empty
        n_groups = -(-len(members) // max_members)
        size = -(-len(members) // n_groups)
        for start in range(0, len(members), size):
            chunk = members[start : start + size]
            if len(chunk) > 1:
                groups.append(FusedGroup(tuple(chunk)))
    return groups
