"""A report from the runs that finished: analyses re-computed on what exists, gaps shown, never hidden.

The strict report needs every run. When a run crashed (an exception, not a
divergence), `snakemake partial_report` still gives a PDF: every analysis is
computed in-process from the study's finished runs into results/partial/,
an analysis that cannot be computed from them says why in its section, each
study shows a completeness grid (done / diverged / failed / missing per cell
and seed), and the title page is marked incomplete.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bnlab.analyses.registry import needs_of
from bnlab.analyses.runner import plan_extra, run_analysis
from bnlab.config import Plan
from bnlab.report.completeness import finished

PARTIAL_DIR = "partial"  # under the results folder


def compute_partial(plan: Plan, results: str | Path, *, log=print) -> tuple[Path, dict[str, dict[str, str]]]:
    """Compute every study's analyses from its finished runs; return their root and what failed, and why."""
    results = Path(results)
    root = results / PARTIAL_DIR / "studies"
    failed: dict[str, dict[str, str]] = {}
    for study in plan.studies.values():
        done = finished(study.runs, results)
        subset = dataclasses.replace(study, runs=done)
        reasons = failed.setdefault(study.name, {})
        for name in study.analyses:
            if study.runs and not done:
                reasons[name] = "no run of this study has finished"
                continue
            missing_needs = [n for n in needs_of(name, study) if n in reasons]
            if missing_needs:
                reasons[name] = f"it needs '{missing_needs[0]}', which could not be computed"
                continue
            try:
                run_analysis(subset, name, results=results, studies_root=root,
                             options=study.analysis_options.get(name), extra=plan_extra(plan, study, name))
            except Exception as err:  # noqa: BLE001  shown in the report, never a crash of the whole PDF
                reasons[name] = f"{type(err).__name__}: {err}"
                log(f"{study.name}/{name}: {reasons[name]}")
        log(f"{study.name}: {len(done)}/{len(study.runs)} runs finished")
    return root, failed

