"""Analyses: one module per analysis, each registered by name (see registry.py).

    from bnlab.analyses import get_analysis, list_analyses, run_analysis
    run_analysis(plan.studies["init"], "summary", results="results")
    # -> results/studies/init/summary/{runs.csv, summary.csv, curves.parquet, fragment.json}

Every module here except registry, runner, collect (the shared reader of run
folders) and formats is an analysis and registers itself when imported.
"""

from bnlab.analyses.registry import (Analysis, figure, fragment, get_analysis, list_analyses, load_plugin,
                                     register, table)
from bnlab.analyses.runner import AnalysisContext, read_fragment, resolve_plan, resolve_study_analyses, run_analysis

__all__ = ["Analysis", "AnalysisContext", "figure", "fragment", "get_analysis", "list_analyses",
           "load_plugin", "read_fragment", "register", "resolve_plan", "resolve_study_analyses", "run_analysis",
           "table"]
