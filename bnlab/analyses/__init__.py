"""Analyses: one module per analysis, each registered by name (see registry.py).

    from bnlab.analyses import get_analysis, list_analyses, run_analysis
    run_analysis(plan.studies["init"], "summary", results="results")
    # -> results/studies/init/summary/{runs.csv, summary.csv, curves.parquet, learning_curves.png, fragment.json}

collect.py is the shared reader of run folders; it is not an analysis.
"""

# The package's own analyses, in the order `analyses` lists them in the README.
BUILTIN = ("summary", "learning_curves", "bn_curves", "speedup", "bn_params", "landscape", "lr_range", "batch_growth",
           "arch", "gradcheck")

from bnlab.analyses.registry import (Analysis, figure, fragment, get_analysis, list_analyses,  # noqa: E402
                                     load_plugin, register, table)
from bnlab.analyses.runner import (AnalysisContext, read_fragment, resolve_plan,  # noqa: E402
                                   resolve_study_analyses, run_analysis)

__all__ = ["BUILTIN", "Analysis", "AnalysisContext", "figure", "fragment", "get_analysis", "list_analyses",
           "load_plugin", "read_fragment", "register", "resolve_plan", "resolve_study_analyses", "run_analysis",
           "table"]
