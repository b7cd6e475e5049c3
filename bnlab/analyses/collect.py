"""Read a study's run folders into tables: one row per run, and long curve data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bnlab.config import StudyPlan
from bnlab.runfolder import METRICS, load_run, read_json

# metrics.json fields copied into the run table
METRIC_COLUMNS = (
    "status", "diverged_step", "steps", "steps_per_epoch", "train_seconds", "wall_seconds",
    "samples_per_second", "parameters", "best_val_acc", "best_val_acc_step", "best_val_loss",
    "final_train_loss", "final_train_acc", "final_val_loss", "final_val_acc", "final_test_loss",
    "final_test_acc", "device",
)


def collect_runs(study: StudyPlan, run_root: str | Path) -> pd.DataFrame:
    """One row per run of the study: label, axis values, seed, metrics, folder."""
    rows = []
    for spec in study.runs:
        path = Path(run_root) / spec.relative_dir()
        run = load_run(path)
        values = spec.as_strings()
        row = {"label": study.label(spec), "seed": spec.seed}
        row.update({axis: values[axis] for axis in study.axes})
        row.update({key: run.metrics.get(key) for key in METRIC_COLUMNS})
        # "epochs" may be a grid axis (the configured value); what was trained is another column
        row["epochs_trained"] = run.metrics.get("epochs")
        row["run_dir"] = spec.relative_dir()
        rows.append(row)
    return pd.DataFrame(rows)


def collect_curves(study: StudyPlan, run_root: str | Path) -> pd.DataFrame:
    """Long table of every evaluation of every run: label, seed, split, step, epoch, loss, acc."""
    frames = []
    for spec in study.runs:
        run = load_run(Path(run_root) / spec.relative_dir())
        h = run.history.copy()
        h.insert(0, "label", study.label(spec))
        h.insert(1, "seed", spec.seed)
        h["status"] = run.metrics.get("status")
        frames.append(h)
    return pd.concat(frames, ignore_index=True)


def read_runs(path: str | Path, axes: list[str]) -> pd.DataFrame:
    """runs.csv back, with axis values kept as the canonical text they were written as."""
    return pd.read_csv(path, dtype={axis: str for axis in axes})


def scan_run_files(study: StudyPlan, run_dir, filename: str, info: dict):
    """Yield (spec, folder, label, status) of every run of the study that has `filename`.

    Counts into `info` what the findings report: runs per label ("seeds"), diverged runs per label
    ("diverged"), and runs without the file ("without_file": folders written before it existed).
    """
    for spec in study.runs:
        folder, label = run_dir(spec), study.label(spec)
        status = read_json(folder / METRICS).get("status", "ok")
        info["seeds"][label] = info["seeds"].get(label, 0) + 1
        if status == "diverged":
            info["diverged"][label] = info["diverged"].get(label, 0) + 1
        if not (folder / filename).exists():
            info["without_file"] += 1
            continue
        yield spec, folder, label, status


def setting_without(study: StudyPlan, spec, drop: tuple[str, ...]) -> str:
    """Legend text of the study's varying axes other than `drop` ("all runs" if none).

    Two runs of a study with the same text differ at most in the `drop` axes (and
    the seed), so it pairs, e.g., a BN cell with the no-BN cell of the same setting.
    """
    values = spec.as_strings()
    return ", ".join(f"{a}={values[a]}" for a in study.axes if a not in drop and values[a] != "na") or "all runs"
