"""Runs end to end: specs + prepared data -> model(s), optimizer(s), the loop -> run folders.

One runner (execute_runs) for a run trained alone and for a fused group
(bnlab/models/fused.py, planned by bnlab.fusion): the setup differs (a
SingleStepper or a FusedStepper, bnlab/train/steppers.py), the loop and the
run folders do not.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from bnlab import runfolder
from bnlab.config import config_hash
from bnlab.data import load_prepared
from bnlab.fusion import fusion_key
from bnlab.models import bn_layers, count_parameters, create_model
from bnlab.models.fused import FusedNet
from bnlab.params import RunSpec, format_number, search_ref
from bnlab.schedules import PICKS_TABLE, batch_size_schedule, chosen_bounds
from bnlab.search import SEARCH_TABLE
from bnlab.search import resolve as resolve_search
from bnlab.provenance import code_version, hardware, library_versions
from bnlab.train.allocator import keep_freed_memory
from bnlab.train.batches import fixed_plan, plan_batches
from bnlab.train.checkpoint import CHECKPOINT, CheckpointPolicy, load_checkpoints, remove_checkpoint
from bnlab.train.coadapt import coadaptation, not_computed
from bnlab.train.determinism import determinism_state, determinism_warnings, prepare_determinism
from bnlab.train.hooks import row_tables, step_hooks
from bnlab.train.l2 import l2_penalty, l2_weights
from bnlab.train.loop import LoopResult, RunRecord, train_steps
from bnlab.train.lr_policy import lr_function
from bnlab.train.memory import micro_batch_cap
from bnlab.train.optimizers import make_optimizer  # noqa: F401  (also imported from here by bench/ and cost)
from bnlab.train.steppers import FusedStepper, SingleStepper
from bnlab.train.tensors import device_splits, fast_layout, with_curve_subsets


def resolve_device(requested: str) -> torch.device:
    """'cpu', 'cuda' or 'auto' (cuda when available) -> torch.device, with a clear error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("execution.device is 'cuda' but no CUDA device is available; use 'cpu' or 'auto'")
    return torch.device(requested)


def bn_snapshotter(model: torch.nn.Module):
    """Callable (step, epoch) -> rows of gamma/beta per BN layer and channel."""
    layers = bn_layers(model)

    def snapshot(step: int, epoch: float) -> list[dict]:
        rows = []
        for index, (name, module, kind) in enumerate(layers):
            if module.weight is None:
                continue
            gamma = module.weight.detach().float().cpu().tolist()
            beta = module.bias.detach().float().cpu().tolist()
            for channel, (g, b) in enumerate(zip(gamma, beta)):
                rows.append({"step": step, "epoch": epoch, "layer": name, "layer_index": index,
                             "kind": kind, "channel": channel, "gamma": g, "beta": b})
        return rows

    return snapshot


def resolve_picks(spec: RunSpec, pick_tables: dict[str, str | Path] | None) -> tuple[RunSpec, dict]:
    """spec with its references replaced by numbers, and what was used.

    'pick-<study>' rates come from that study's range-test picks (lr_range.csv);
    best-/draw<i>-<study> values from its search candidates (search.csv, bnlab.search).
    pick_tables maps a study to its picks folder (results/picks/<study>), or to
    one of the tables in it. The run folder keeps the reference; config.json and
    metrics.json record the numbers trained with.
    """
    if not spec.picks and not spec.searches:
        return spec, {}
    values, used = {}, {}

    def folder_of(param: str, study: str, table_name: str) -> Path:
        if not pick_tables or study not in pick_tables:
            raise ValueError(f"{param} refers to study '{study}' but no {table_name} of it was given")
        path = Path(pick_tables[study])
        return path if path.is_dir() else path.parent

    for param, study in spec.picks.items():
        bounds = chosen_bounds(pd.read_csv(folder_of(param, study, PICKS_TABLE) / PICKS_TABLE), study)
        # lr is the top rate (the range test's lr_max); lr_min is kept as text like every lr_min
        value = bounds["lr_max"] if param == "lr" else bounds["lr_min"]
        values[param] = value if param == "lr" else format_number(value)
        used[param] = {"value": value, "study": study, "curve": bounds["curve"]}
    for param, reference in spec.searches.items():
        study = search_ref(reference)[2]
        table = pd.read_csv(folder_of(param, study, SEARCH_TABLE) / SEARCH_TABLE)
        used[param] = resolve_search(param, reference, table)
        values[param] = used[param]["value"]
    resolved = dataclasses.replace(spec, **values)
    if resolved.lr_min != "na" and float(resolved.lr_min) >= resolved.lr:
        raise ValueError(f"picked lr_min {resolved.lr_min} is not below lr {resolved.lr}")
    return resolved, used


def _best(history: pd.DataFrame, split: str, column: str, highest: bool):
    rows = history[(history.split == split) & history[column].notna()]
    rows = rows[rows[column].apply(math.isfinite)]
    if rows.empty:
        return None, None
    row = rows.loc[rows[column].idxmax() if highest else rows[column].idxmin()]
    return float(row[column]), int(row["step"])


def summarise(spec: RunSpec, result: LoopResult, history: pd.DataFrame) -> dict:
    """metrics.json content (apart from provenance)."""
    done = result.steps_done
    out: dict = {
        "status": result.status,
        "diverged_step": result.diverged_step,
        "steps": done,
        "steps_per_epoch": result.steps_per_epoch,
        "epochs": result.plan.progress(done),
        "train_seconds": result.train_seconds,
        "batch_size": result.batch_size,
        "final_batch_size": result.plan.sizes[done - 1] if done else result.batch_size,
        "max_micro_batches": max(result.micro_batches, default=1),
        "samples": result.samples,
        "samples_per_second": result.samples / result.train_seconds if result.train_seconds > 0 else None,
    }
    # Curve splits: last and best curve point. best_val_acc is a curve statistic (on the
    # evaluation subset); final_val_* and final_test_* are then the whole splits' ("*_full" rows).
    for split in ("train", "val", "test", "val_full", "test_full"):
        rows = history[history.split == split]
        if rows.empty:
            continue
        last = rows.iloc[-1]
        name = split.removesuffix("_full")
        out[f"final_{name}_loss"] = float(last["loss"])
        out[f"final_{name}_acc"] = float(last["acc"])
        if split in ("train", "val", "test"):
            out[f"best_{split}_acc"], out[f"best_{split}_acc_step"] = _best(history, split, "acc", True)
            out[f"best_{split}_loss"], _ = _best(history, split, "loss", False)
    out["eval_seconds"] = result.eval_seconds
    out["eval_images"] = {split: int(history[history.split == split]["images"].iloc[-1])
                          for split in ("val", "test", "val_full", "test_full")
                          if (history.split == split).any()}
    return out


def _schedule_length(spec: RunSpec, n_train: int) -> tuple[int, int]:
    """(steps per epoch, total steps) of a fixed batch, from the batch plan the loop follows."""
    plan = fixed_plan(n_train, spec.epochs, spec.batch_size)
    return plan.steps_in_epoch(0), plan.total


def batch_function(spec: RunSpec):
    """step -> batch size of a run whose batch grows; None for a fixed batch (growth via lr included)."""
    if not spec.grows or spec.batch_growth_via != "batch":
        return None
    end = int(spec.batch_growth_max)
    return lambda step: batch_size_schedule(step, spec.batch_size, end, every=spec.batch_growth_every)


def build_model(spec: RunSpec, data, dev: torch.device) -> torch.nn.Module:
    """The run's model on `dev`, initialised from the global RNG (seeded with the run's seed before)."""
    return create_model(
        spec.model, input_shape=data.input_shape, num_classes=data.num_classes, bn=spec.bn, bn_impl=spec.bn_impl,
        activation=spec.activation, dropout_in=spec.dropout_in, dropout_hidden=spec.dropout_hidden,
        init=spec.init, init_scale=spec.init_scale_value, widths=spec.widths_list,
    ).to(dev)


def execute_runs(
    specs: list[RunSpec],
    data_path: str | Path,
    out_dirs: list[str | Path],
    *,
    fuse: bool = False,
    threads: int = 1,
    device: str = "cpu",
    log: Callable[[str], None] = print,
    checkpoint_every_steps: int = 0,
    checkpoint_every_seconds: float = 0.0,
    pick_tables: dict[str, str | Path] | None = None,
    group: str = "",
) -> list[dict]:
    """Train the specs and write each one's run folder (see runfolder.py); returns their metrics.

    One spec trains alone; with fuse, the specs (one architecture and batch plan, bnlab.fusion) train
    as one fused model (bnlab/models/fused.py), each member built exactly as the run alone (torch
    seeded with the run's seed, then the model's init), so fusing changes how the runs are computed,
    not what they are: a member's folder holds the run's histories within float tolerance
    (tests/test_fused.py) and metrics.json says it was fused (`fused`: members, group, position).
    Checkpoints left in the folders by an earlier, interrupted attempt are resumed from; new ones are
    written by the policy given.
    """
    wall0 = time.perf_counter()
    if len(specs) != len(out_dirs) or not specs or (len(specs) > 1 and not fuse):
        raise ValueError(f"{len(specs)} specs for {len(out_dirs)} run folders (several train only fused)")
    # what may differ between members has one home: bnlab.fusion, which planned the group
    odd = [s.relative_dir() for s in specs[1:] if fusion_key(s) != fusion_key(specs[0])]
    if odd:
        raise ValueError(f"runs cannot be fused with {specs[0].relative_dir()}: {odd}")
    out_dirs = [Path(d) for d in out_dirs]
    for d in out_dirs:
        d.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    keep_freed_memory()  # every step reuses the last step's memory (allocator.py: page faults otherwise)
    first = specs[0]
    torch.manual_seed(first.seed)
    dev = resolve_device(device)  # a clear error for cuda without a GPU, before anything is set
    prepare_determinism(dev)  # before the run's first CUDA work (cuBLAS reads its setting then)
    nondeterministic: list[str] = []  # torch's warnings about ops that ran non-deterministically

    resolved = [resolve_picks(spec, pick_tables) for spec in specs]  # specs keep the folders' identity
    data = load_prepared(data_path)
    splits = device_splits(data, train_subset=first.train_subset, normalize=first.normalize, device=dev)
    splits = with_curve_subsets(splits, first.eval_size)
    models, generators = [], []
    for spec in specs:
        torch.manual_seed(spec.seed)  # the init draws follow the seed
        models.append(build_model(spec, data, dev))
        if fuse:  # the member's dropout masks continue the stream its init left, as the run alone would draw them
            generators.append(torch.Generator(device=dev))
            generators[-1].set_state(torch.get_rng_state() if dev.type == "cpu" else torch.cuda.get_rng_state(dev))
    if fuse:
        image_format = torch.channels_last if any(isinstance(m, torch.nn.Conv2d) for m in models[0].modules()) \
            else torch.contiguous_format
        fused = FusedNet(models, generators, image_format=image_format)  # members' tensors become views
    else:
        models[0], splits = fast_layout(models[0], splits)  # channels-last for conv nets (measured in bench/)
    # on the views, after fusing
    optimizers = [make_optimizer(train_spec, model.parameters()) for (train_spec, _), model in zip(resolved, models)]
    micro_cap = micro_batch_cap(models[0], data.input_shape, first.mem_cap_mb) if first.mem_cap_mb and not fuse else 0
    n_params = count_parameters(models[0])
    policies = [CheckpointPolicy(d / CHECKPOINT, checkpoint_every_steps, checkpoint_every_seconds) for d in out_dirs]
    runs = [RunRecord(order_seed=spec.seed, bn_snapshot=bn_snapshotter(model), checkpoint=policy,
                      checkpoint_extra={"params": spec.as_strings()}, name=f"member {i}")
            for i, (spec, model, policy) in enumerate(zip(specs, models, policies))]
    _resume(runs, models, optimizers, specs, fused if fuse else None, log)
    if fuse:
        log(f"fused group {group or '(unnamed)'}: {len(specs)} runs of {first.model} with {n_params:,} parameters "
            f"each on {dev} ({threads} threads); data {data.name}: train {len(splits.train_x)} val {len(splits.val_x)} "
            f"test {len(splits.test_x)}")
        for i, spec in enumerate(specs):
            log(f"  member {i}: {spec.relative_dir()}")
    else:
        _log_run(first, resolved[0][1], data, splits, n_params, dev, threads, micro_cap, log)

    plan = plan_batches(len(splits.train_x), first.epochs, batch_function(first) or (lambda step: first.batch_size))
    lr_ats = [lr_function(train_spec, *_schedule_length(spec, len(splits.train_x)))
              for spec, (train_spec, _) in zip(specs, resolved)]
    if fuse:
        stepper = FusedStepper(fused, optimizers, splits, plan, lr_ats=lr_ats, dropout_generators=generators,
                               l2s=[train_spec.l2 for train_spec, _ in resolved], label_smoothing=first.label_smoothing)
    else:
        # the per-step instruments the run takes (bnlab/instruments.py), as hooks around its update
        stepper = SingleStepper(models[0], optimizers[0], splits, plan, lr_at=lr_ats[0], max_micro_batch=micro_cap,
                                hooks=step_hooks(first, models[0]), l2=resolved[0][0].l2,
                                label_smoothing=first.label_smoothing)
    with determinism_warnings(nondeterministic):
        results = train_steps(stepper, runs, splits, plan, evals_per_epoch=first.evals_per_epoch,
                              eval_test=first.eval_test, log=log)
    metrics = []
    for i, (spec, (train_spec, picked), model, result, out_dir) in enumerate(
            zip(specs, resolved, models, results, out_dirs)):
        if fuse:
            fused.release(i)  # the member alone again: co-adaptation and L2 read its own tensors
        metrics.append(write_run_folder(
            spec, train_spec, picked, data, splits, model, member_share(result, len(specs)) if fuse else result,
            out_dir, threads=threads, dev=dev, wall0=wall0, nondeterministic=nondeterministic, log=log,
            n_params=n_params, micro_cap=micro_cap, checkpoint_path=runs[i].checkpoint.path,
            extra_metrics={"fused": {"members": len(specs), "group": group, "position": i,
                                     "group_train_seconds": result.train_seconds}} if fuse else None))
    return metrics


def execute_run(spec: RunSpec, data_path: str | Path, out_dir: str | Path, **options) -> dict:
    """One run alone (execute_runs' options); returns its metrics."""
    return execute_runs([spec], data_path, [out_dir], **options)[0]


def execute_fused(specs: list[RunSpec], data_path: str | Path, out_dirs: list[str | Path], **options) -> list[dict]:
    """The specs as one fused group (execute_runs' options); returns their metrics."""
    return execute_runs(specs, data_path, out_dirs, fuse=True, **options)


def _log_run(spec: RunSpec, picked: dict, data, splits, n_params: int, dev: torch.device, threads: int,
             micro_cap: int, log: Callable[[str], None]) -> None:
    log(f"run {spec.relative_dir()}")
    log(f"data {data.name} from {data.source}: train {len(splits.train_x)} val {len(splits.val_x)} "
        f"test {len(splits.test_x)} (curve points on {len(splits.curve('val')[0])} val"
        f"{'' if spec.eval_test != 'every' else ' and ' + str(len(splits.curve('test')[0])) + ' test'} images); model {spec.model} with {n_params:,} parameters on {dev} ({threads} threads)")
    for param, p in picked.items():
        log(f"{param} = {p['value']:.4g}, " + (f"picked by the {p['curve']} range test" if "curve" in p else
            f"the {'best' if p['kind'] == 'best' else 'draw ' + str(p['draw']) + ' near the best'} of the search")
            + f" of study '{p['study']}'")
    if micro_cap:
        log(f"batches above {micro_cap} samples are accumulated (batch_mem_mb {spec.batch_mem_mb})")
    if batch_function(spec) and int(spec.batch_growth_max) > len(splits.train_x):
        log(f"batch_growth_max {spec.batch_growth_max} is above the {len(splits.train_x)} training images: "
            "the batch stops growing at the whole training set")


def member_share(result: LoopResult, members: int) -> LoopResult:
    """A member's result with its share of the group's training time (train_seconds and the history's clock
    divided by the members), so a study's seconds add up to the compute spent, not K times it; metrics.json
    keeps the group's own under fused.group_train_seconds."""
    return dataclasses.replace(
        result, train_seconds=result.train_seconds / members,
        history=[{**row, "train_seconds": row["train_seconds"] / members} if "train_seconds" in row else row
                 for row in result.history])


def _resume(runs: list[RunRecord], models: list[torch.nn.Module], optimizers: list[torch.optim.Optimizer],
            specs: list[RunSpec], fused: FusedNet | None, log: Callable[[str], None]) -> None:
    """Load a checkpoint of every run at one step, or none: members of one group continue together.

    Each member of a group keeps its last two checkpoints, so a group killed while its members were being
    saved one after another resumes from the step before. A member that diverged before that step resumes
    as it stopped (frozen); one that diverged after it resumes from its checkpoint at that step.
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
        if all(p is not None and (fused is None or "dropout_state" in p) for p in chosen):
            break
    else:
        missing = [i for i, payloads in enumerate(found) if not payloads]
        log(f"fused checkpoints do not fit together (missing for members {missing}, steps {trained_to}): "
            "starting the group over")
        return
    for i, (run, model, optimizer, payload) in enumerate(zip(runs, models, optimizers, chosen)):
        model.load_state_dict(payload["model"])  # into a fused net: copies into the fused tensors' views
        optimizer.load_state_dict(payload["optimizer"])
        run.resume = payload
        if payload["loop"].status != "ok" and fused is not None:
            fused.release(i)  # it diverged before the kill: frozen as it was


def write_run_folder(spec: RunSpec, train_spec: RunSpec, picked: dict, data, splits, model: torch.nn.Module,
                     result: LoopResult, out_dir: Path, *, threads: int, dev: torch.device, wall0: float,
                     nondeterministic: list[str], log: Callable[[str], None], n_params: int, micro_cap: int,
                     checkpoint_path: Path, extra_metrics: dict | None = None) -> dict:
    """The run folder of a trained run (runfolder.py): co-adaptation, metrics with provenance, the files.

    metrics.json is written last (it marks the run as finished); then the checkpoint goes.
    """
    c0 = time.perf_counter()
    if spec.coadapt:  # the final model, diverged or not (non-finite units are counted, not hidden)
        coadapt = {**coadaptation(model, splits.curve("val")[0]), "split": "val", "step": result.steps_done,
                   "status": result.status}
    else:
        coadapt = not_computed("coadapt: false")
    coadapt_seconds = time.perf_counter() - c0
    if spec.ics_every:
        measured = len({r["step"] for r in result.ics_rows})
        log(f"internal covariate shift measured at {measured} steps (every {spec.ics_every}): "
            f"{result.ics_seconds:.1f} s, not counted as training time")
    if spec.coadapt:
        log(f"co-adaptation proxy on {coadapt['images']} validation images: " + ", ".join(
            f"{r['name']} {r['mean_abs_corr']:.3f}" for r in coadapt["layers"]) + f" ({coadapt_seconds:.1f} s)")

    history = pd.DataFrame(result.history)
    sizes = list(result.plan.sizes[: result.steps_done])
    steps = pd.DataFrame({
        "step": range(1, result.steps_done + 1),
        "epoch": [result.plan.progress(s) for s in range(1, result.steps_done + 1)],
        "batch_size": sizes,
        "micro_batches": result.micro_batches,
        "samples": pd.Series(sizes, dtype="int64").cumsum(),
        "loss": result.step_loss.numpy(),
        "grad_norm": result.step_grad_norm.numpy(),
        "last_grad_change": result.step_last_grad_change.numpy(),
        "lr": result.step_lr,
    })
    bn = pd.DataFrame(result.bn_rows, columns=["step", "epoch", "layer", "layer_index", "kind", "channel", "gamma", "beta"])
    metrics = summarise(spec, result, history)
    metrics.update({
        "parameters": n_params,
        "device": str(dev),
        "threads": threads,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "resumed_from_step": result.resumed_from,
        "lr_used": train_spec.lr,
        "lr_min_used": None if train_spec.lr_min == "na" else float(train_spec.lr_min),
        "picked": picked,
        "micro_batch_cap": micro_cap or None,
        "ics_seconds": result.ics_seconds,
        "ics_steps": len({r["step"] for r in result.ics_rows}),
        "coadapt_seconds": coadapt_seconds if spec.coadapt else None,
        # the cost J = loss + l2_penalty at the end (seed 001's cost; None without an L2 term)
        "l2_penalty": l2_penalty(l2_weights(model), train_spec.l2) if train_spec.l2 else None,
        "wall_seconds": time.perf_counter() - wall0,
        **(extra_metrics or {}),
        "dataset_source": data.source,
        "dataset_checksum": data.checksum,
        "dataset_files": data.files,  # per source file: path, sha256, "verified" / "unverified: why"
        "code_version": code_version(),
        "libraries": library_versions(),
        "hardware": hardware(),
        # read back from torch and the environment: what was in force, not what was asked for
        "determinism": {"torch_seed": spec.seed, "order_seed": spec.seed, "threads": threads,
                        **determinism_state(), "nondeterministic_ops": nondeterministic},
    })
    run_config = {"params": spec.as_strings(), "run_dir": spec.relative_dir(), "code_version": code_version(),
                  "params_hash": config_hash(spec.as_strings()), "picked": picked,
                  "dataset": {"name": data.name, "source": data.source, "checksum": data.checksum}}
    runfolder.write_json(out_dir / runfolder.CONFIG, run_config)
    runfolder.write_parquet(out_dir / runfolder.HISTORY, history)
    runfolder.write_parquet(out_dir / runfolder.STEPS, steps)
    runfolder.write_parquet(out_dir / runfolder.BN_PARAMS, bn)
    for inst, columns in row_tables():  # each per-step instrument's rows (probes, ICS): empty where not taken
        (file,) = inst.files
        runfolder.write_parquet(out_dir / file, pd.DataFrame(result.rows.get(inst.name, []),
                                                             columns=["step", "epoch", *columns]))
    runfolder.write_json(out_dir / runfolder.COADAPTATION, coadapt)
    runfolder.write_weights(out_dir / runfolder.WEIGHTS, model.state_dict())
    runfolder.write_json(out_dir / runfolder.METRICS, metrics)  # last: marks the run as finished
    remove_checkpoint(checkpoint_path)
    log(f"done: status {metrics['status']}, best val acc {metrics.get('best_val_acc')}, "
        f"test acc {metrics.get('final_test_acc')}, {metrics['wall_seconds']:.1f} s")
    return metrics
