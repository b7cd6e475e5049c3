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


def searched_labels(study: StudyPlan, metrics: dict[str, dict]) -> dict[str, str]:
    """Each run's legend text, with a searched axis value written as the number the run trained with.

    A search stage's runs are written draw<i>-<study> in the config (the value is drawn when the run starts,
    from the stage before); a table or legend of 'l2=draw16-l2_coarse' tells a reader nothing. The number
    comes from the run's metrics (picked.<param>.value), with the fewest significant digits (at least 3)
    that keep the study's values apart, so no two runs merge into one label. `metrics`: each run's
    metrics.json by its folder (relative_dir), as the caller loaded them."""
    used: dict[str, dict[str, float]] = {}
    for spec in study.runs:
        picked = metrics[spec.relative_dir()].get("picked") or {}
        used[spec.relative_dir()] = {param: float(p["value"]) for param, p in picked.items()
                                     if param in study.axes and isinstance(p, dict) and "value" in p}
    params = {param for values in used.values() for param in values}
    digits = {}
    for param in params:
        values = sorted({v[param] for v in used.values() if param in v})
        digits[param] = next((d for d in range(3, 17) if len({f"{x:.{d}g}" for x in values}) == len(values)), 17)
    labels = {}
    for spec in study.runs:
        label, strings = study.label(spec), spec.as_strings()
        for param, value in used[spec.relative_dir()].items():
            label = label.replace(f"{param}={strings[param]}", f"{param}={value:.{digits[param]}g}")
        labels[spec.relative_dir()] = label
    return labels


def load_runs(study: StudyPlan, run_root: str | Path) -> dict:
    """Every run folder of the study (config, metrics, history), by relative_dir: read once for both tables."""
    return {spec.relative_dir(): load_run(Path(run_root) / spec.relative_dir()) for spec in study.runs}


def collect_runs(study: StudyPlan, run_root: str | Path, runs: dict | None = None) -> pd.DataFrame:
    """One row per run of the study: label, axis values, seed, metrics, folder (`runs`: load_runs's, if the
    caller has read them already)."""
    rows = []
    runs = runs if runs is not None else load_runs(study, run_root)
    labels = searched_labels(study, {folder: run.metrics for folder, run in runs.items()})
    for spec in study.runs:
        run = runs[spec.relative_dir()]
        values = spec.as_strings()
        row = {"label": labels[spec.relative_dir()], "seed": spec.seed}
        row.update({axis: values[axis] for axis in study.axes})
        row.update({key: run.metrics.get(key) for key in METRIC_COLUMNS})
        # "epochs" may be a grid axis (the configured value); what was trained is another column
        row["epochs_trained"] = run.metrics.get("epochs")
        row["run_dir"] = spec.relative_dir()
        rows.append(row)
    return pd.DataFrame(rows)


def collect_curves(study: StudyPlan, run_root: str | Path, runs: dict | None = None) -> pd.DataFrame:
    """Long table of every evaluation of every run: label, seed, split, step, epoch, loss, acc."""
    frames = []
    runs = runs if runs is not None else load_runs(study, run_root)
    labels = searched_labels(study, {folder: run.metrics for folder, run in runs.items()})
    for spec in study.runs:
        run = runs[spec.relative_dir()]
        h = run.history.copy()
        h.insert(0, "label", labels[spec.relative_dir()])
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


def setting_name(axes_text: str, baseline_label: str | None) -> str:
    """How a sentence names a setting (a cell less the axis being compared, e.g. BN): the baseline cell's
    label where the study names its cells ('CNN, lr=0.5'), else the axes as key=value ('model=cnn2,
    widths=default, lr=0.5'); whichever has fewer key=value pairs."""
    if baseline_label and baseline_label.count("=") < axes_text.count("="):
        return baseline_label
    return axes_text


def setting_without(study: StudyPlan, spec, drop: tuple[str, ...]) -> str:
    """Legend text of the study's varying axes other than `drop` ("all runs" if none).

    Two runs of a study with the same text differ at most in the `drop` axes (and
    the seed), so it pairs, e.g., a BN cell with the no-BN cell of the same setting.
    """
    values = spec.as_strings()
    return ", ".join(f"{a}={values[a]}" for a in study.axes if a not in drop and values[a] != "na") or "all runs"
