"""A fused group end to end: K run specs -> K member models fused into one -> K ordinary run folders.

Each member is built exactly as bnlab/train/run.py builds the run alone
(torch seeded with the run's seed, then the model's init), so fusing changes
how the runs are computed, not what they are: a member's run folder holds
the same histories as the unfused run's within float tolerance
(tests/test_fused.py), and a later unfused re-run of it is the same run.
metrics.json says it was fused (`fused`: members, group, position).
"""

from __future__ import annotations

import dataclasses

import time
from pathlib import Path
from typing import Callable

import torch

from bnlab.data import load_prepared
from bnlab.fusion import fusion_key
from bnlab.models import count_parameters
from bnlab.models.fused import FusedNet
from bnlab.params import RunSpec
from bnlab.train.batches import plan_batches
from bnlab.train.checkpoint import CHECKPOINT, CheckpointPolicy, load_checkpoints
from bnlab.train.determinism import determinism_warnings, prepare_determinism
from bnlab.train.loop import LoopResult, RunRecord, train_steps
from bnlab.train.lr_policy import lr_function
from bnlab.train.optimizers import make_optimizer
from bnlab.train.run import (_schedule_length, batch_function, bn_snapshotter, build_model, resolve_device,
                             resolve_picks, write_run_folder)
from bnlab.train.steppers import FusedStepper
from bnlab.train.tensors import device_splits, with_curve_subsets

def execute_fused(
    specs: list[RunSpec],
    data_path: str | Path,
    out_dirs: list[str | Path],
    *,
    threads: int = 1,
    device: str = "cpu",
    log: Callable[[str], None] = print,
    checkpoint_every_steps: int = 0,
    checkpoint_every_seconds: float = 0.0,
    pick_tables: dict[str, str | Path] | None = None,
    group: str = "",
) -> list[dict]:
    """Train the specs as one fused model and write each one's run folder; returns their metrics."""
    wall0 = time.perf_counter()
    if len(specs) != len(out_dirs) or not specs:
        raise ValueError(f"{len(specs)} specs for {len(out_dirs)} run folders")
    # what may differ between members has one home: bnlab.fusion, which planned the group
    odd = [s.relative_dir() for s in specs if fusion_key(s) != fusion_key(specs[0])]
    if odd:
        raise ValueError(f"runs cannot be fused with {specs[0].relative_dir()}: {odd}")
    out_dirs = [Path(d) for d in out_dirs]
    for d in out_dirs:
        d.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    dev = resolve_device(device)
    prepare_determinism(dev)
    nondeterministic: list[str] = []
    data = load_prepared(data_path)
    first = specs[0]
    splits = with_curve_subsets(device_splits(data, train_subset=first.train_subset, normalize=first.normalize,
                                              device=dev), first.eval_size)

    resolved, models, generators = [], [], []
    for spec in specs:
        resolved.append(resolve_picks(spec, pick_tables))
        torch.manual_seed(spec.seed)  # as execute_run: the init draws follow the seed
        models.append(build_model(spec, data, dev))
        # the member's dropout masks continue the stream its init left, as the run alone would draw them
        generator = torch.Generator(device=dev)
        generator.set_state(torch.get_rng_state() if dev.type == "cpu" else torch.cuda.get_rng_state(dev))
        generators.append(generator)
    image_format = torch.channels_last if any(isinstance(m, torch.nn.Conv2d) for m in models[0].modules()) \
        else torch.contiguous_format
    fused = FusedNet(models, generators, image_format=image_format)  # members' tensors become views

    plan = plan_batches(len(splits.train_x), first.epochs, batch_function(first) or (lambda step: first.batch_size))
    optimizers = [make_optimizer(train_spec, model.parameters())  # on the views, after fusing
                  for (train_spec, _), model in zip(resolved, models)]
    runs = [RunRecord(order_seed=spec.seed, bn_snapshot=bn_snapshotter(model),
                      checkpoint=CheckpointPolicy(out_dir / CHECKPOINT, checkpoint_every_steps, checkpoint_every_seconds),
                      checkpoint_extra={"params": spec.as_strings()}, name=f"member {i}")
            for i, (spec, model, out_dir) in enumerate(zip(specs, models, out_dirs))]
    _resume(runs, models, optimizers, specs, fused, log)
    stepper = FusedStepper(
        fused, optimizers, splits, plan, dropout_generators=generators, label_smoothing=first.label_smoothing,
        lr_ats=[lr_function(train_spec, *_schedule_length(spec, len(splits.train_x)))
                for spec, (train_spec, _) in zip(specs, resolved)],
        l2s=[train_spec.l2 for train_spec, _ in resolved])

    n_params = count_parameters(models[0])
    log(f"fused group {group or '(unnamed)'}: {len(specs)} runs of {first.model} with {n_params:,} parameters "
        f"each on {dev} ({threads} threads); data {data.name}: train {len(splits.train_x)} val {len(splits.val_x)} "
        f"test {len(splits.test_x)}")
    for i, spec in enumerate(specs):
        log(f"  member {i}: {spec.relative_dir()}")
    with determinism_warnings(nondeterministic):
        results = train_steps(stepper, runs, splits, plan, evals_per_epoch=first.evals_per_epoch,
                              eval_test=first.eval_test, log=log)
    metrics = []
    for i, (spec, (train_spec, picked), model, result, out_dir) in enumerate(
            zip(specs, resolved, models, results, out_dirs)):
        fused.release(i)  # the member alone again: co-adaptation and L2 read its own tensors
        metrics.append(write_run_folder(
            spec, train_spec, picked, data, splits, model, member_share(result, len(specs)), out_dir,
            threads=threads, dev=dev, wall0=wall0, nondeterministic=nondeterministic, log=log, n_params=n_params,
            micro_cap=0, checkpoint_path=runs[i].checkpoint.path,
            extra_metrics={"fused": {"members": len(specs), "group": group, "position": i,
                                     "group_train_seconds": result.train_seconds}}))
    return metrics


def member_share(result: LoopResult, members: int) -> LoopResult:
    """A member's result with its share of the group's training time (train_seconds and the history's clock
    divided by the members), so a study's seconds add up to the compute spent, not K times it; metrics.json
    keeps the group's own under fused.group_train_seconds."""
    return dataclasses.replace(
        result, train_seconds=result.train_seconds / members,
        history=[{**row, "train_seconds": row["train_seconds"] / members} if "train_seconds" in row else row
                 for row in result.history])


def _resume(runs: list[RunRecord], models: list[torch.nn.Module], optimizers: list[torch.optim.Optimizer],
            specs: list[RunSpec], fused: FusedNet, log: Callable[[str], None]) -> None:
    """Load a checkpoint of every member at one step, or none: members of one group continue together.

    Each member keeps its last two checkpoints, so a group killed while its members were being saved one
    after another resumes from the step before. A member that diverged before that step resumes as it
    stopped (frozen); one that diverged after it resumes from its checkpoint at that step.
    """
    found = [load_checkpoints(r.checkpoint.path, s.as_strings(), log) for r, s in zip(runs, specs)]
    if not any(found):
        return
    trained_to = sorted({p["loop"].step for payloads in found for p in payloads if p["loop"].status == "ok"},
                        reverse=True)

    def at(payloads: list[dict], step: int | None) -> dict | None:
        ok = [p for p in payloads if p["loop"].status == "ok" and p["loop"].step == step]
        stopped = [p for p in payloads if p["loop"].status != "ok" and (step is None or p["loop"].step <= step)]
        return (ok or stopped or [None])[0]

    for step in trained_to or [None]:  # None: every member had stopped (diverged) before the kill
        chosen = [at(payloads, step) for payloads in found]
        if all(p is not None and "dropout_state" in p for p in chosen):
            break
    else:
        missing = [i for i, payloads in enumerate(found) if not payloads]
        log(f"fused checkpoints do not fit together (missing for members {missing}, steps {trained_to}): "
            "starting the group over")
        return
    for i, (run, model, optimizer, payload) in enumerate(zip(runs, models, optimizers, chosen)):
        model.load_state_dict(payload["model"])  # copies into the fused tensors' views
        optimizer.load_state_dict(payload["optimizer"])
        run.resume = payload
        if payload["loop"].status != "ok":
            fused.release(i)  # it diverged before the kill: frozen as it was
