"""One run end to end: spec + prepared data -> model, optimizer, loop -> run folder."""

from __future__ import annotations

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
from bnlab.params import RunSpec
from bnlab.provenance import code_version, hardware, library_versions
from bnlab.train.checkpoint import CHECKPOINT, CheckpointPolicy, load_checkpoint, remove_checkpoint
from bnlab.train.loop import LoopResult, train_loop
from bnlab.train.lr_policy import lr_function
from bnlab.train.tensors import device_splits


def resolve_device(requested: str) -> torch.device:
    """'cpu', 'cuda' or 'auto' (cuda when available) -> torch.device, with a clear error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("execution.device is 'cuda' but no CUDA device is available; use 'cpu' or 'auto'")
    return torch.device(requested)


def make_optimizer(spec: RunSpec, params) -> torch.optim.Optimizer:
    if spec.optimizer == "adam":
        # Adam with its defaults (betas 0.9/0.999), as the seeds ask.
        return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)
    if spec.optimizer == "sgd":
        return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum_value, weight_decay=spec.weight_decay)
    raise ValueError(f"unknown optimizer '{spec.optimizer}'")


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


def _best(history: pd.DataFrame, split: str, column: str, highest: bool):
    rows = history[(history.split == split) & history[column].notna()]
    rows = rows[rows[column].apply(math.isfinite)]
    if rows.empty:
        return None, None
    row = rows.loc[rows[column].idxmax() if highest else rows[column].idxmin()]
    return float(row[column]), int(row["step"])


def summarise(spec: RunSpec, result: LoopResult, history: pd.DataFrame) -> dict:
    """metrics.json content (apart from provenance)."""
    out: dict = {
        "status": result.status,
        "diverged_step": result.diverged_step,
        "steps": result.steps_done,
        "steps_per_epoch": result.steps_per_epoch,
        "epochs": result.steps_done / result.steps_per_epoch,
        "train_seconds": result.train_seconds,
        "batch_size": result.batch_size,
        "samples_per_second": result.steps_done * result.batch_size / result.train_seconds
        if result.train_seconds > 0 else None,
    }
    for split in ("train", "val", "test"):
        rows = history[history.split == split]
        if rows.empty:
            continue
        last = rows.iloc[-1]
        out[f"final_{split}_loss"] = float(last["loss"])
        out[f"final_{split}_acc"] = float(last["acc"])
        out[f"best_{split}_acc"], out[f"best_{split}_acc_step"] = _best(history, split, "acc", True)
        out[f"best_{split}_loss"], _ = _best(history, split, "loss", False)
    return out


def _schedule_length(spec: RunSpec, n_train: int) -> tuple[int, int]:
    """(steps per epoch, total steps) as the loop will take them (the last partial batch is dropped)."""
    per_epoch = n_train // min(spec.batch_size, n_train)
    return per_epoch, per_epoch * spec.epochs


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
    torch.use_deterministic_algorithms(True, warn_only=True)
    dev = resolve_device(device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = False

    data = load_prepared(data_path)
    splits = device_splits(data, train_subset=spec.train_subset, normalize=spec.normalize, device=dev)
    model = create_model(
        spec.model, input_shape=data.input_shape, num_classes=data.num_classes, bn=spec.bn, bn_impl=spec.bn_impl,
        activation=spec.activation, dropout_in=spec.dropout_in, dropout_hidden=spec.dropout_hidden,
        init=spec.init, init_scale=spec.init_scale_value, widths=spec.widths_list,
    ).to(dev)
    optimizer = make_optimizer(spec, model.parameters())
    n_params = count_parameters(model)
    policy = CheckpointPolicy(out_dir / CHECKPOINT, checkpoint_every_steps, checkpoint_every_seconds)
    resume = load_checkpoint(policy.path, spec.as_strings(), log)
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
    log(f"run {spec.relative_dir()}")
    log(f"data {data.name} from {data.source}: train {len(splits.train_x)} val {len(splits.val_x)} "
        f"test {len(splits.test_x)}; model {spec.model} with {n_params:,} parameters on {dev} ({threads} threads)")

    result = train_loop(
        model, optimizer, splits, epochs=spec.epochs, batch_size=spec.batch_size,
        evals_per_epoch=spec.evals_per_epoch, order_seed=spec.seed, eval_test=spec.eval_test, log=log,
        bn_snapshot=bn_snapshotter(model), checkpoint=policy if policy.enabled else None,
        checkpoint_extra={"params": spec.as_strings()}, resume=resume,
        probe_every=spec.probe_every, probe_etas=spec.probe_multipliers,
        lr_at=lr_function(spec, *_schedule_length(spec, len(splits.train_x))),
    )

    history = pd.DataFrame(result.history)
    steps = pd.DataFrame({
        "step": range(1, result.steps_done + 1),
        "epoch": [s / result.steps_per_epoch for s in range(1, result.steps_done + 1)],
        "loss": result.step_loss.numpy(),
        "grad_norm": result.step_grad_norm.numpy(),
        "last_grad_change": result.step_last_grad_change.numpy(),
        "lr": result.step_lr,
    })
    probes = pd.DataFrame(result.probe_rows, columns=["step", "epoch", "eta", "step_size", "loss", "grad_change", "beta"])
    bn = pd.DataFrame(result.bn_rows, columns=["step", "epoch", "layer", "layer_index", "kind", "channel", "gamma", "beta"])
    metrics = summarise(spec, result, history)
    metrics.update({
        "parameters": n_params,
        "device": str(dev),
        "threads": threads,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "resumed_from_step": result.resumed_from,
        "wall_seconds": time.perf_counter() - wall0,
        "dataset_source": data.source,
        "dataset_checksum": data.checksum,
        "code_version": code_version(),
        "libraries": library_versions(),
        "hardware": hardware(),
        "determinism": {"torch_seed": spec.seed, "order_seed": spec.seed,
                        "deterministic_algorithms": True, "threads": threads},
    })
    run_config = {"params": spec.as_strings(), "run_dir": spec.relative_dir(), "code_version": code_version(),
                  "params_hash": config_hash(spec.as_strings()),
                  "dataset": {"name": data.name, "source": data.source, "checksum": data.checksum}}
    runfolder.write_json(out_dir / runfolder.CONFIG, run_config)
    runfolder.write_parquet(out_dir / runfolder.HISTORY, history)
    runfolder.write_parquet(out_dir / runfolder.STEPS, steps)
    runfolder.write_parquet(out_dir / runfolder.BN_PARAMS, bn)
    runfolder.write_parquet(out_dir / runfolder.PROBES, probes)
    runfolder.write_json(out_dir / runfolder.METRICS, metrics)  # last: marks the run as finished
    remove_checkpoint(policy.path)
    log(f"done: status {metrics['status']}, best val acc {metrics.get('best_val_acc')}, "
        f"test acc {metrics.get('final_test_acc')}, {metrics['wall_seconds']:.1f} s")
    return metrics
