"""Everything the report template shows, computed from the study tables and run files."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pandas as pd

from bnlab.analysis.findings import bn_comparison_findings, generic_findings
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


def fmt_loss(x) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


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
                               pm("train_loss", fmt_loss), pm("val_loss", fmt_loss),
                               fmt_num(r["train_seconds_mean"], 3)],
                     "diverged": int(r["n_diverged"]) > 0})
    return {"header": header, "rows": rows}


def _figure(path: Path, caption: str) -> dict:
    return {"path": path.resolve().as_uri(), "caption": caption}


def wall_text(row) -> str:
    """Wall-clock speedup cell: estimate and interval when the steps speedup has a number."""
    value = row.get("wall_speedup")
    if value is None or pd.isna(value):
        return "—"
    low, high = row.get("wall_ci_low"), row.get("wall_ci_high")
    if low is None or pd.isna(low):
        return f"{value:.2f}x"
    return f"{value:.2f}x [{low:.2f}, {high:.2f}]"


def speedup_table(paired: pd.DataFrame) -> dict:
    header = ["setting", "BN", "steps speedup [95% CI]", "wall-clock speedup [95% CI]"]
    rows = []
    for _, r in paired.iterrows():
        rows.append({"cells": [r["setting"], r["bn"], r["text"], wall_text(r)],
                     "diverged": "diverged" in str(r["text"])})
    return {"header": header, "rows": rows,
            "caption": "Speedup from BN: optimizer steps (and training seconds) the no-BN run needs to reach its "
                       "best validation accuracy, divided by those the BN run needs to reach the same accuracy; "
                       "geometric mean over seeds, percentile bootstrap interval over seeds."}


def bn_layers_table(layers: pd.DataFrame) -> dict:
    header = ["setting", "layer", "channels", "gamma mean ± sd", "gamma min..max", "beta mean ± sd", "beta min..max"]
    rows = []
    for _, r in layers.iterrows():
        rows.append({"cells": [r["label"], r["layer"], str(int(r["channels"])),
                               f"{r['gamma_mean']:.3f} ± {r['gamma_sd']:.3f}" if pd.notna(r["gamma_sd"]) else f"{r['gamma_mean']:.3f}",
                               f"{r['gamma_min']:.2f}..{r['gamma_max']:.2f}",
                               f"{r['beta_mean']:.3f} ± {r['beta_sd']:.3f}" if pd.notna(r["beta_sd"]) else f"{r['beta_mean']:.3f}",
                               f"{r['beta_min']:.2f}..{r['beta_max']:.2f}"],
                     "diverged": False})
    return {"header": header, "rows": rows,
            "caption": "Learned BN parameters per layer at the end of training, pooled over channels and seeds."}


def references_table(study: StudyPlan, runs: pd.DataFrame) -> dict | None:
    """Published numbers beside ours: our runs selected by each reference's `match`."""
    if not study.references:
        return None
    by_dir = runs.set_index("run_dir")
    rows = []
    for ref in study.references:
        chosen = [r for r in study.runs if all(r.as_strings().get(k) == v for k, v in ref["match"].items())]
        table = by_dir.loc[[r.relative_dir() for r in chosen]] if chosen else by_dir.iloc[:0]
        ok = pd.to_numeric(table[table.status == "ok"][ref["metric"]], errors="coerce").dropna()
        if len(ok):
            ours = fmt_pct(ok.mean()) + "%" + (f" ± {fmt_pct(ok.std(ddof=1))}" if len(ok) > 1 else "")
            ours += f" ({len(ok)} run{'s' if len(ok) > 1 else ''})"
        else:
            ours = "no finished matching run"
        setup = ", ".join(sorted({f"{display_name(r.dataset)}, {r.model}, {r.epochs} epochs"
                                  + (f", {r.train_subset} training images" if r.train_subset else "")
                                  for r in chosen})) or "—"
        rows.append({"cells": [ref["what"], ref["published"], ref["source"], ours, setup], "diverged": False})
    return {"header": ["published setup", "published", "source", f"ours", "our setup"], "rows": rows,
            "caption": "Published numbers beside ours. Where our setup differs (dataset, epochs, subset), "
                       "the comparison is indicative only; the last column says what we ran."}


def landscape_table_cells(table: pd.DataFrame) -> dict:
    columns = [("bn", "BN"), ("steps", "steps"), ("course_loss_band", "loss band (course)"),
               ("course_grad_change", "grad change (course)"), ("course_beta_max", "beta max (course)"),
               ("probed_steps", "probed steps"), ("probe_loss_band", "loss band (probes)"),
               ("probe_grad_change", "grad change (probes)"), ("probe_beta", "beta (probes)")]
    columns = [(c, h) for c, h in columns if c in table.columns]
    rows = [{"cells": [str(r[c]) if c in ("bn", "steps", "probed_steps") else fmt_num(r[c], 3) for c, _ in columns],
             "diverged": False} for _, r in table.iterrows()]
    return {"header": [h for _, h in columns], "rows": rows,
            "caption": "Landscape summary, means over training steps: course-method band width across learning "
                       "rates and last-layer gradient change; Santurkar probes' band over step sizes, gradient "
                       "change and effective beta-smoothness."}


def picked_rates_findings(study: StudyPlan, results: Path) -> list[str]:
    """The numbers behind 'pick-<study>' rates, as the runs recorded them (metrics.json 'picked')."""
    used: dict[tuple, set] = {}
    for run in study.runs:
        if not run.picks:
            continue
        picked = read_json(results / "runs" / run.relative_dir() / "metrics.json").get("picked") or {}
        for param, p in picked.items():
            used.setdefault((p["study"], p["curve"]), set()).add((param, p["value"]))
    sentences = []
    for (source, curve), values in used.items():
        names = {"lr": "lr (lr_max)", "lr_min": "lr_min"}
        text = ", ".join(f"{names[param]} = {value:.3g}" for param, value in sorted(values))
        sentences.append(f"Rates written pick-{source} are those the {curve} LR range test of study '{source}' "
                         f"picked: {text}.")
    return sentences


def study_context(study: StudyPlan, results: Path) -> dict:
    from bnlab.analysis.bn_params import bn_findings
    from bnlab.analysis.collect import read_runs
    from bnlab.analysis.speedup import speedup_findings

    folder = results / "studies" / study.name
    runs = read_runs(folder / "runs.csv", study.axes)
    summary = pd.read_csv(folder / "summary.csv", dtype={axis: str for axis in study.axes})
    where = study.dataset_note()
    first_metrics = read_json(results / "runs" / study.runs[0].relative_dir() / "metrics.json")
    figures = [_figure(folder / "learning_curves.png",
                       f"Learning curves {where}: mean over seeds (line) and min..max over seeds (band), per epoch; "
                       "an x marks the last finite point of a diverged run.")]
    tables = [{"caption": "Summary over seeds (mean ± sd of finished runs; accuracy in %)", **summary_table(summary)}]
    findings = picked_rates_findings(study, results) + generic_findings(summary) \
        + bn_comparison_findings(summary, study.axes)
    if "bn_curves" in study.analyses:
        figures.append(_figure(folder / "bn_curves_acc.png",
                               f"Validation accuracy with and without BN, one panel per setting, {where}."))
        figures.append(_figure(folder / "bn_curves_loss.png",
                               f"Training loss (log scale) with and without BN, one panel per setting, {where}."))
    if "speedup" in study.analyses:
        paired = pd.read_csv(folder / "speedup.csv")
        tables.append(speedup_table(paired))
        findings += speedup_findings(paired)
    if "bn_params" in study.analyses:
        layers = pd.read_csv(folder / "bn_layers.csv")
        figures.append(_figure(folder / "bn_violins.png",
                               f"Learned BN gamma (top) and beta (bottom) per layer at the end of training, {where}; "
                               "each violin is the distribution over channels and seeds; dashed lines: the initial values."))
        tables.append(bn_layers_table(layers))
        findings += bn_findings(layers)
    if "landscape" in study.analyses:
        from bnlab.landscape.summary import landscape_findings

        table = pd.read_csv(folder / "landscape.csv", dtype={"bn": str})
        figures.append(_figure(folder / "landscape_course.png",
                               f"Course method (seed 004), {where}: per step, the band between the lowest and the "
                               "highest training loss across the learning rates, BN and no BN; below, the change of "
                               "the output layer's gradient between consecutive steps and its max across learning "
                               "rates (the course's beta-smoothness)."))
        figures.append(_figure(folder / "landscape_probes.png",
                               f"Santurkar et al. probes, {where}: every k-th step, loss and gradient change at "
                               "w - eta*lr*g for eta in [0.5, 4] on the step's own batch (band over eta), and the "
                               "effective beta-smoothness (max over eta of gradient change / step length)."))
        tables.append(landscape_table_cells(table))
        findings += landscape_findings(table)
    if "lr_range" in study.analyses:
        from bnlab.analysis.lr_range import lr_range_findings

        # empty numbers (no blow-up seen) read as NaN; empty texts as ""
        picks = pd.read_csv(folder / "lr_range.csv", dtype={"error": str, "rule": str})
        picks = picks.assign(error=picks.error.fillna(""), rule=picks.rule.fillna(""))
        figures.append(_figure(folder / "lr_range.png",
                               f"LR range test {where}: final training loss of each constant-rate run (left) and "
                               "every step's loss of one exponential sweep (right), with the picked lr_min and "
                               "lr_max."))
        tables.append({"caption": "LR range test picks. Rule: " + (picks.rule.iloc[0] if len(picks) else ""),
                       "header": ["curve", "lowest loss at lr", "lr_min", "lr_max", "blew up from lr"],
                       "rows": [{"cells": [r["curve"], fmt_num(r["lr_at_min"], 2), fmt_num(r["lr_min"], 2),
                                           fmt_num(r["lr_max"], 2), fmt_num(r["lr_blowup"], 2) or "—"],
                                 "diverged": bool(r["error"])} for _, r in picks.iterrows()]})
        findings += lr_range_findings(picks)
    if "batch_growth" in study.analyses:
        tables_, findings_, figure_ = batch_growth_parts(study, folder, where)
        tables += tables_
        findings += findings_
        figures.append(figure_)
    references = references_table(study, runs)
    if references:
        tables.append(references)
    return {
        "name": study.name,
        "title": study.title,
        "question": study.question,
        "source": study.source,
        "notes": study.notes,
        "datasets": ", ".join(display_name(d) for d in study.datasets),
        "dataset_source": first_metrics.get("dataset_source", ""),
        "setup": setup_rows(study),
        "grid": grid_rows(study),
        "n_runs": len(runs),
        "n_diverged": int((runs.status == "diverged").sum()),
        "train_seconds": float(pd.to_numeric(runs.train_seconds, errors="coerce").sum()),
        "tables": tables,
        "findings": findings,
        "figures": figures,
    }


def batch_growth_parts(study: StudyPlan, folder: Path, where: str) -> tuple[list[dict], list[str], dict]:
    """Table, findings and figure of a batch_growth analysis (seed 003 p. 2.3)."""
    from bnlab.analysis import batch_growth

    summ = pd.read_csv(folder / "batch_growth.csv", keep_default_na=False, na_values=[""])
    summ["picked"] = summ.picked.fillna("")
    figure = _figure(folder / "batch_growth.png",
                     f"Growing batch against decaying lr {where}: training loss by data seen and by optimizer "
                     "update, and each policy's batch size and learning rate. The lr decay divides lr by the "
                     "factor the batch grows by, at the same number of samples (Smith et al. 2017).")
    picked = "; ".join(f"{r.policy}: {r.picked}" for r in summ.itertuples() if r.picked)
    table = {
        "caption": "Policies at equal data seen (means over seeds; test accuracy ± seed s.d.)."
                   + (f" Rates picked by the range test: {picked}." if picked else ""),
        "header": ["policy", "updates", "batch", "micro-batches", "lr", "train loss",
                   "test loss", "test acc %", "train s"],
        "rows": [{"cells": [r.policy + (f" (diverged {r.diverged}/{r.runs})" if r.diverged else ""),
                            f"{r.updates:,.0f}", f"{r.batch_first}→{r.batch_last}", str(r.max_micro_batches),
                            batch_growth.lr_text(r.lr_first, r.lr_last, r.lr_low, r.lr_high),
                            fmt_loss(r.final_train_loss),
                            fmt_loss(r.final_test_loss),
                            fmt_pct(r.test_acc) + (f" ± {100 * r.test_acc_sd:.1f}" if r.test_acc_sd == r.test_acc_sd
                                                   else ""),
                            f"{r.train_seconds:.0f}"],
                  "diverged": bool(r.diverged)} for r in summ.itertuples()],
    }
    return [table], batch_growth.findings(summ, len(study.seeds)), figure


def section_context(study: StudyPlan, results: Path) -> dict:
    """A study that trains nothing: its rule wrote tables, figures and findings to section.json."""
    folder = results / "studies" / study.name
    section = read_json(folder / "section.json")
    tables = [{"caption": t["caption"], "header": t["header"],
               "rows": [{"cells": [str(c) for c in row], "diverged": False} for row in t["rows"]]}
              for t in section.get("tables", [])]
    figures = [_figure(folder / f["file"], f["caption"]) for f in section.get("figures", [])]
    return {"name": study.name, "title": study.title, "question": study.question, "source": study.source,
            "notes": study.notes, "datasets": "", "dataset_source": "", "setup": [], "grid": [], "n_runs": 0,
            "n_diverged": 0, "train_seconds": 0.0, "tables": tables, "findings": section.get("findings", []),
            "figures": figures}


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
    studies = [study_context(s, results) if s.kind == "train" else section_context(s, results)
               for s in plan.studies.values()]
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
