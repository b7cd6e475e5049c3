"""What the report template shows: assembly only.

Each study's section is its analyses' fragments (fragment.json in each
analysis folder), concatenated in the order the study lists its analyses.
This module adds what is not any analysis's business: the title page (with
its scorecard of every study's expectations and published numbers), the
study headers (grid and fixed parameters, from the plan), the completeness
grid of a partial report, and the provenance appendix.

A fragment's optional "background" parts ([{"title", "source", "paragraphs"}],
any analysis) are passed through as the study's background blocks, in the
order of its analyses; a fragment without them is fine.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from bnlab.analyses.measures import MEASURES
from bnlab.analyses.runner import read_fragment
from bnlab.config import Plan, StudyPlan
from bnlab.data import display_name
from bnlab.params import NOT_APPLICABLE, PARAM_NAMES, search_ref
from bnlab.provenance import code_version, hardware, installed_packages, library_versions
from bnlab.report.completeness import run_states
from bnlab.report.discussion import discussion
from bnlab.runfolder import METRICS, read_json
from bnlab.setting import phrase


def setup_rows(study: StudyPlan) -> list[tuple[str, str]]:
    """Parameters shared by every run of the study (the varying ones are the grid)."""
    if not study.runs:
        return []
    first = study.runs[0].as_strings()
    return [(p, first[p]) for p in PARAM_NAMES
            if p not in study.axes and p != "seed" and first[p] != NOT_APPLICABLE]


def _axis_text(values: list[str]) -> str:
    """An axis's values as one line; a search stage's draws (written draw1-s ... drawN-s in the config, a
    notation a reader was never taught) as what they are: N values drawn near the best of study s. Their
    numbers are known only once the runs start; the summary lists them."""
    refs = [search_ref(v) for v in values]
    if len(values) > 2 and all(r is not None and r[0] == "draw" for r in refs) and len({r[2] for r in refs}) == 1:
        indices = sorted(r[1] for r in refs)
        if indices == list(range(indices[0], indices[0] + len(indices))):
            study = refs[0][2]
            return (f"{len(values)} values drawn at random near the best of study '{study}' "
                    "(the summary lists them)")
    numbers = _numbers(values)
    if numbers is not None and len(numbers) > 6:
        steps = [b - a for a, b in zip(numbers, numbers[1:])]
        if all(abs(d - steps[0]) <= 1e-4 * abs(steps[0]) for d in steps):  # a linspace axis, rounded
            return f"{len(values)} values evenly spaced from {values[0]} to {values[-1]}"
    return ", ".join(values)


def _numbers(values: list[str]) -> list[float] | None:
    try:
        return [float(v) for v in values]
    except ValueError:
        return None


def grid_rows(study: StudyPlan) -> list[tuple[str, str]]:
    if not study.runs:
        return []
    rows = []
    for axis in study.axes:
        values = list(dict.fromkeys(r.as_strings()[axis] for r in study.runs))
        rows.append((axis, _axis_text(values)))
    rows.append(("seeds", ", ".join(map(str, study.seeds))))
    return rows


def study_context(study: StudyPlan, results: Path, studies_root: Path, *, failed: dict | None = None) -> dict:
    """One study's section: its header from the plan, then every analysis fragment in order.

    `failed` maps an analysis to the reason it has no fragment (partial reports
    only); such an analysis shows as a sentence saying so.
    """
    failed = failed or {}
    figures, tables, findings, references, stats = [], [], [], [], {}
    background, expectations, verdicts, answers = [], [], [], []
    for name in study.analyses:
        if name in failed:
            findings.append(f"Analysis '{name}' could not be computed from the finished runs: {failed[name]}")
            continue
        folder = studies_root / study.name / name
        if not (folder / "fragment.json").exists():
            findings.append(f"Analysis '{name}' has not been computed.")
            continue
        part = read_fragment(studies_root, study.name, name)
        # images relative to the results folder, where the HTML lives: the report survives a move
        rel = folder.relative_to(results).as_posix()
        figures += [{"path": f"{rel}/{f['file']}", "caption": f["caption"]} for f in part["figures"]]
        tables += part["tables"]
        findings += part["findings"]
        references += [r for r in part["references"] if r not in references]
        background += background_parts(part.get("background"), name)
        part_stats = part.get("stats", {})
        if part_stats.get("expectations"):
            expectations.append(part_stats["expectations"])
        verdicts += part_stats.get("references") or []
        answers += part_stats.get("answers") or []
        stats.update(part_stats)
    return {
        "name": study.name,
        "title": study.title,
        "question": study.question,
        "source": study.source,
        "notes": study.notes,
        "setting": setting_text(study),
        "setting_note": study.setting_note,
        "datasets": ", ".join(display_name(d) for d in study.datasets),
        "dataset_source": stats.get("dataset_source", ""),
        "setup": setup_rows(study),
        "grid": grid_rows(study),
        "n_runs": stats.get("n_runs", 0),
        "n_diverged": stats.get("n_diverged", 0),
        "train_seconds": stats.get("train_seconds", 0.0),
        "tables": tables,
        "findings": findings,
        "figures": figures,
        "references": references,
        "background": background,
        # for the title page's scorecard: counts of the expectations analysis, summary's reference verdicts
        "expectations": merge_expectations(expectations),
        "reference_verdicts": verdicts,
        "completeness": None,
        # the seed's questions answered in words from the verdicts above (bnlab.report.discussion)
        "discussion": discussion({**stats, "references": verdicts, "answers": answers,
                                  "expectations": {"items": [i for e in expectations for i in e.get("items", [])]}},
                                 study.seed_differences() if study.scale else []),
    }


def setting_text(study: StudyPlan) -> str:
    """The study's scale and where it differs from its seed's stated setting, in a sentence."""
    if not study.scale:
        return ""
    gaps = study.seed_differences()
    text = f"{study.scale.capitalize()} scale: "
    if not study.seed_setting:
        text += "the seed states no setting to compare with."
    elif gaps:
        text += "differs from the seed's setting in " + "; ".join(gaps) + "."
    else:
        text += "the seed's stated setting (" + ", ".join(phrase(p, v) for p, v in study.seed_setting.items()) + ")."
    if gaps and study.scale_why:
        text += f" Why: {study.scale_why}."
    return text


def background_parts(parts, analysis: str) -> list[dict]:
    """A fragment's "background" parts as the template shows them (title, paragraphs, source line).

    Any analysis may write them; paragraphs given as one string are one paragraph.
    """
    out = []
    for i, part in enumerate(parts or []):
        if not isinstance(part, dict):
            raise ValueError(f"analysis {analysis!r}: background part {i} is not an object: {part!r}")
        paragraphs = part.get("paragraphs", [])
        paragraphs = [paragraphs] if isinstance(paragraphs, str) else [str(p) for p in paragraphs]
        out.append({"analysis": analysis, "title": str(part.get("title", "")),
                    "source": str(part.get("source", "") or ""), "paragraphs": paragraphs})
    return out


EXPECTATION_VERDICTS = ("confirmed", "contradicted", "inconclusive")


def merge_expectations(found: list[dict]) -> dict | None:
    """The study's expectation counts (stats["expectations"]["counts"]), summed if several analyses give them."""
    if not found:
        return None
    counts = {k: sum(int(e.get("counts", {}).get(k, 0)) for e in found) for k in EXPECTATION_VERDICTS}
    return {"counts": counts, "n": sum(counts.values())}


def reference_counts(verdicts: list[dict]) -> dict:
    """Published numbers over the report: reproduced (inside their band), missed (outside), and those that
    could not be compared, by why (summary.reference_verdict's why_not_scored): our setting at this scale is
    not the published one, the published setup differs at every scale, no band, no finished run."""
    from bnlab.analyses.summary import DIFFERENT, NO_BAND, NO_RUN, NOT_COMPARABLE

    inside = sum(v["verdict"] == "inside" for v in verdicts)
    outside = sum(v["verdict"] == "outside" for v in verdicts)
    unscored = [v.get("why_not_scored") for v in verdicts if v["verdict"] not in ("inside", "outside")]
    return {"n": len(verdicts), "scored": inside + outside, "inside": inside, "outside": outside,
            "not_scored": len(unscored), "setting": unscored.count(NOT_COMPARABLE),
            "different": unscored.count(DIFFERENT), "other": unscored.count(NO_BAND) + unscored.count(NO_RUN)}


def scorecard(studies: list[dict]) -> dict | None:
    """The title page's scorecard: per study with expectations, its confirmed / contradicted /
    inconclusive counts (linking to its section), their totals, and the published numbers of every
    study. None when no study has expectations (the title page then shows none)."""
    rows = [{"name": s["name"], "title": s["title"], "href": f"#{s['name']}", **s["expectations"]["counts"]}
            for s in studies if s.get("expectations")]
    if not rows:
        return None
    totals = {k: sum(r[k] for r in rows) for k in EXPECTATION_VERDICTS}
    references = reference_counts([v for s in studies for v in s.get("reference_verdicts", [])])
    return {"rows": rows, "totals": totals, "references": references if references["n"] else None}


def appendix_context(plan: Plan, results: Path) -> dict:
    """Provenance: code, config, libraries, hardware, and what the finished runs themselves recorded."""
    devices, sources, versions = set(), {}, {}
    n_finished = 0
    for run in plan.runs:
        path = results / "runs" / run.relative_dir() / METRICS
        if not path.exists():  # a partial report: a run that did not finish recorded nothing
            continue
        n_finished += 1
        m = read_json(path)
        hw = m.get("hardware") or {}
        gpu = ", ".join(f"{key} {hw[key]}" if key != "gpu" else hw[key]
                        for key in ("gpu", "cuda", "cudnn", "driver") if hw.get(key))
        devices.add(f"{m.get('device')} ({hw.get('cpu', '')}{', ' + gpu if gpu else ''})")
        # each source file: its name, whether it matched the published checksum, its SHA-256 (bnlab.data.checksums)
        files = [(Path(f["path"]).name, f["status"], f["sha256"]) for f in m.get("dataset_files") or []]
        sources[display_name(run.dataset)] = (m.get("dataset_source"), m.get("dataset_checksum"), files)
        versions.setdefault(m.get("code_version"), 0)
        versions[m.get("code_version")] += 1
    return {
        "config_hash": plan.config_hash,
        "code_version": code_version(),
        "run_code_versions": versions,
        "libraries": library_versions(),
        "packages": installed_packages(),
        "hardware": hardware(),
        "run_devices": sorted(devices),
        "datasets": sources,
        "n_runs": len(plan.runs),
        "n_finished": n_finished,
    }


def report_context(plan: Plan, results: Path, *, studies_root: Path | None = None,
                   partial: dict | None = None) -> dict:
    """The template's context. `partial` (study -> {analysis: reason}) marks a report from what exists."""
    studies_root = studies_root or results / "studies"
    studies = []
    for study in plan.studies.values():
        failed = (partial or {}).get(study.name, {})
        section = study_context(study, results, studies_root, failed=failed)
        if partial is not None:
            section["completeness"] = completeness_table(study, results)
        studies.append(section)
    incomplete = incomplete_summary(plan, results) if partial is not None else None
    return {
        "scorecard": scorecard(studies),
        "title": plan.config["report"]["title"],
        "subtitle": plan.config["report"]["subtitle"],
        "scale_description": plan.config["report"].get("scale_description", ""),
        "left_out": left_out_by_reason(plan.config["report"].get("left_out") or {}),
        "date": dt.date.today().isoformat(),
        "runs_folder": f"{plan.config['results']}/runs",  # as the config names it: where a reader finds the runs
        "studies": studies,
        # a partial report is made from the runs that finished, and says so
        "n_runs": len(plan.runs) if incomplete is None else incomplete["counts"]["done"] + incomplete["counts"]["diverged"],
        "n_diverged": sum(s["n_diverged"] for s in studies),
        "train_hours": sum(s["train_seconds"] for s in studies) / 3600,
        "incomplete": incomplete,
        "appendix": appendix_context(plan, results),
        # each measure of a run once, with what it evaluates (bnlab/analyses/measures.py)
        "measures": [{"name": m.name, "header": m.short, "split": m.split, "images": m.images, "point": m.point}
                     for m in MEASURES.values()],
    }


def left_out_by_reason(left_out: dict[str, str]) -> list[tuple[str, list[str]]]:
    """The library's studies a report leaves out, grouped by why: [(reason, [study, ...]), ...]."""
    groups: dict[str, list[str]] = {}
    for name, why in left_out.items():
        groups.setdefault(why, []).append(name)
    return list(groups.items())


def completeness_table(study: StudyPlan, results: Path) -> dict | None:
    """Cells x seeds of a study: done / diverged / failed / missing, for a partial report."""
    if not study.runs:
        return None
    states = run_states(study.runs, results)
    cells: dict[str, dict[int, str]] = {}
    for run in study.runs:
        cells.setdefault(study.label(run), {})[run.seed] = states[run.relative_dir()]
    seeds = list(study.seeds)
    rows = [{"cells": [label] + [by_seed.get(s, "—") for s in seeds],
             "diverged": any(v in ("failed", "missing") for v in by_seed.values())}
            for label, by_seed in cells.items()]
    counts = {}
    for state in states.values():
        counts[state] = counts.get(state, 0) + 1
    text = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    return {"caption": f"Completeness of this study's runs ({text}).",
            "header": ["setting"] + [f"seed {s}" for s in seeds], "rows": rows}


def incomplete_summary(plan: Plan, results: Path) -> dict:
    states = run_states(plan.runs, results)
    counts = {k: sum(1 for v in states.values() if v == k) for k in ("done", "diverged", "failed", "missing")}
    return {"counts": counts, "n_runs": len(states),
            "complete": counts["failed"] == 0 and counts["missing"] == 0}
