"""Everything the report template shows, computed from the study tables and run files."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pandas as pd

from bnlab.analysis.findings import generic_findings
from bnlab.config import Plan, StudyPlan
from bnlab.data import display_name
from bnlab.params import NOT_APPLICABLE, PARAM_NAMES
from bnlab.provenance import code_version, hardware, library_versions
from bnlab.runfolder import read_json



def fmt_pct(x) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def fmt_num(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return f"{x:.{digits}g}"


def setup_rows(study: StudyPlan) -> list[tuple[str, str]]:
    """Parameters shared by every run of the study (the varying ones are the grid)."""
    first = study.runs[0].as_strings()
    return [(p, first[p]) for p in PARAM_NAMES
            if p not in study.axes and p != "seed" and first[p] != NOT_APPLICABLE]


def grid_rows(study: StudyPlan) -> list[tuple[str, str]]:
    rows = []
    for axis in study.axes:
        values = list(dict.fromkeys(r.as_strings()[axis] for r in study.runs))
        rows.append((axis, ", ".join(values)))
    rows.append(("seeds", ", ".join(map(str, study.seeds))))
    return rows


def summary_table(summary: pd.DataFrame) -> dict:
    """Header and formatted rows of the summary table (accuracies in %)."""
    header = ["setting", "runs", "diverged", "best val acc %", "test acc %", "train loss", "val loss", "train s"]
    rows = []
    for _, r in summary.iterrows():
        def pm(name, f=fmt_pct):
            mean, sd = r[f"{name}_mean"], r[f"{name}_sd"]
            if f(mean) == "":
                return "—"
            return f(mean) + (f" ± {f(sd)}" if f(sd) else "")
        rows.append({"cells": [r["label"], str(int(r["n"])), r["diverged"], pm("best_val_acc"), pm("test_acc"),
                               pm("train_loss", fmt_num), pm("val_loss", fmt_num),
                               fmt_num(r["train_seconds_mean"], 3)],
                     "diverged": int(r["n_diverged"]) > 0})
    return {"header": header, "rows": rows}


def study_context(study: StudyPlan, results: Path) -> dict:
    folder = results / "studies" / study.name
    runs = pd.read_csv(folder / "runs.csv")
    summary = pd.read_csv(folder / "summary.csv")
    datasets = sorted({r.dataset for r in study.runs})
    first_metrics = read_json(results / "runs" / study.runs[0].relative_dir() / "metrics.json")
    return {
        "name": study.name,
        "title": study.title,
        "question": study.question,
        "source": study.source,
        "notes": study.notes,
        "datasets": ", ".join(display_name(d) for d in datasets),
        "dataset_source": first_metrics.get("dataset_source", ""),
        "setup": setup_rows(study),
        "grid": grid_rows(study),
        "n_runs": len(runs),
        "n_diverged": int((runs.status == "diverged").sum()),
        "train_seconds": float(pd.to_numeric(runs.train_seconds, errors="coerce").sum()),
        "table": summary_table(summary),
        "findings": generic_findings(summary),
        "figures": [
            {"path": (folder / "learning_curves.png").resolve().as_uri(),
             "caption": f"Learning curves of '{study.title}' on {', '.join(display_name(d) for d in datasets)}: "
                        "mean over seeds (line) and min..max over seeds (band), per epoch; "
                        "an x marks the last finite point of a diverged run."},
        ],
    }


def appendix_context(plan: Plan, results: Path) -> dict:
    """Provenance: code, config, libraries, hardware, and what the runs themselves recorded."""
    devices, sources, versions = set(), {}, {}
    for run in plan.runs:
        m = read_json(results / "runs" / run.relative_dir() / "metrics.json")
        devices.add(f"{m.get('device')} ({m.get('hardware', {}).get('cpu', '')}"
                    f"{', ' + m['hardware']['gpu'] if m.get('hardware', {}).get('gpu') else ''})")
        sources[display_name(run.dataset)] = (m.get("dataset_source"), m.get("dataset_checksum"))
        versions.setdefault(m.get("code_version"), 0)
        versions[m.get("code_version")] += 1
    return {
        "config_hash": plan.config_hash,
        "code_version": code_version(),
        "run_code_versions": versions,
        "libraries": library_versions(),
        "hardware": hardware(),
        "run_devices": sorted(devices),
        "datasets": sources,
        "n_runs": len(plan.runs),
    }


def report_context(plan: Plan, results: Path) -> dict:
    studies = [study_context(s, results) for s in plan.studies.values()]
    return {
        "title": plan.config["report"]["title"],
        "subtitle": plan.config["report"]["subtitle"],
        "date": dt.date.today().isoformat(),
        "studies": studies,
        "n_runs": len(plan.runs),
        "n_diverged": sum(s["n_diverged"] for s in studies),
        "train_hours": sum(s["train_seconds"] for s in studies) / 3600,
        "appendix": appendix_context(plan, results),
    }
