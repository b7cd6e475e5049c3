"""One run end to end: spec + prepared data -> model, optimizer, loop -> run folder."""

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
from bnlab.models import bn_layers, count_parameters, create_model
from bnlab.params import RunSpec, format_number, search_ref
from bnlab.schedules import PICKS_TABLE, batch_size_schedule, chosen_bounds
from bnlab.search import SEARCH_TABLE
from bnlab.search import resolve as resolve_search
from bnlab.provenance import code_version, hardware, library_versions
from bnlab.train.batches import fixed_plan
from bnlab.train.checkpoint import CHECKPOINT, CheckpointPolicy, load_checkpoint, remove_checkpoint
from bnlab.train.coadapt import coadaptation, not_computed
from bnlab.train.determinism import determinism_state, determinism_warnings, prepare_determinism
from bnlab.train.ics import ICS_COLUMNS
from bnlab.train.l2 import l2_penalty, l2_weights
from bnlab.train.loop import LoopResult, train_loop
from bnlab.train.lr_policy import lr_function
from bnlab.train.memory import micro_batch_cap
from bnlab.train.optimizers import make_optimizer  # noqa: F401  (also imported from here by bench/ and cost)
from bnlab.train.probes import PROBE_COLUMNS
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


def execute_run(
    spec: RunSpec,
    data_path: str | Path,
    out_dir: str | Path,
    *,
    threads: int = 1,
    device: str = "cpu",
    log: Callable[[str], None] = print,
    checkpoint_every_steps: int = 0,
    checkpoint_every_seconds: float = 0.0,
    pick_tables: dict[str, str | Path] | None = None,
) -> dict:
    """Train one run and write its folder (see runfolder.py); returns metrics.

    A checkpoint left in the folder by an earlier, interrupted attempt at the
    same run is resumed from; new checkpoints are written by the policy given.
    """
    wall0 = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    torch.manual_seed(spec.seed)
    dev = resolve_device(device)  # a clear error for cuda without a GPU, before anything is set
    prepare_determinism(dev)  # before the run's first CUDA work (cuBLAS reads its setting then)
    nondeterministic: list[str] = []  # torch's warnings about ops that ran non-deterministically

    train_spec, picked = resolve_picks(spec, pick_tables)  # spec keeps the folder's identity
    data = load_prepared(data_path)
    splits = device_splits(data, train_subset=spec.train_subset, normalize=spec.normalize, device=dev)
    splits = with_curve_subsets(splits, spec.eval_size)
    model = build_model(spec, data, dev)
    model, splits = fast_layout(model, splits)  # channels-last for conv nets (measured in bench/)
    optimizer = make_optimizer(train_spec, model.parameters())
    micro_cap = micro_batch_cap(model, data.input_shape, spec.mem_cap_mb) if spec.mem_cap_mb else 0
    n_params = count_parameters(model)
    policy = CheckpointPolicy(out_dir / CHECKPOINT, checkpoint_every_steps, checkpoint_every_seconds)
    resume = load_checkpoint(policy.path, spec.as_strings(), log)
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
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

    with determinism_warnings(nondeterministic):
        result = train_loop(
            model, optimizer, splits, epochs=spec.epochs, batch_size=spec.batch_size,
            batch_at=batch_function(spec), max_micro_batch=micro_cap,
            evals_per_epoch=spec.evals_per_epoch, order_seed=spec.seed, eval_test=spec.eval_test, log=log,
            bn_snapshot=bn_snapshotter(model), checkpoint=policy if policy.enabled else None,
            checkpoint_extra={"params": spec.as_strings()}, resume=resume,
            probe_every=spec.probe_every, probe_etas=spec.probe_multipliers,
            lr_at=lr_function(train_spec, *_schedule_length(spec, len(splits.train_x))),
            ics_every=spec.ics_every, l2=train_spec.l2, label_smoothing=spec.label_smoothing,
        )
    return write_run_folder(spec, train_spec, picked, data, splits, model, result, out_dir, threads=threads, dev=dev,
                            wall0=wall0, nondeterministic=nondeterministic, log=log, n_params=n_params,
                            micro_cap=micro_cap, checkpoint_path=policy.path)


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
    probes = pd.DataFrame(result.probe_rows, columns=["step", "epoch", *PROBE_COLUMNS])
    ics = pd.DataFrame(result.ics_rows, columns=["step", "epoch", *ICS_COLUMNS])
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
    runfolder.write_parquet(out_dir / runfolder.PROBES, probes)
    runfolder.write_parquet(out_dir / runfolder.ICS, ics)
    runfolder.write_json(out_dir / runfolder.COADAPTATION, coadapt)
    runfolder.write_weights(out_dir / runfolder.WEIGHTS, model.state_dict())
    runfolder.write_json(out_dir / runfolder.METRICS, metrics)  # last: marks the run as finished
    remove_checkpoint(checkpoint_path)
    log(f"done: status {metrics['status']}, best val acc {metrics.get('best_val_acc')}, "
        f"test acc {metrics.get('final_test_acc')}, {metrics['wall_seconds']:.1f} s")
    return metrics
