"""The analysis registry: one entry per analysis, like the model registry.

An analysis turns one study's run folders into files (tables, figures) in
its own folder, results/studies/<study>/<analysis>/, and then describes its
report section as data, a *fragment*:

    {"figures":  [{"file": "curves.png", "caption": "..."}],
     "tables":   [{"caption": "...", "header": [...], "rows": [{"cells": [...], "diverged": False}]}],
     "findings": ["sentence", ...],
     "references": ["Ioffe & Szegedy 2015", ...],
     "stats":    {...},          # optional numbers the report's assembly uses (run counts, hours)
     "background": [{"title": "...", "source": "...", "paragraphs": [...]}],  # optional explanations
     "data":     [{"file": "summary.csv", "caption": "..."}]}  # optional: what its CSV files hold

An entry declares what it reads, so one generic Snakemake rule can give each
(study, analysis) job exactly its inputs:

- `reads`: run-folder files (names from bnlab.runfolder) of every run of the study;
- `needs`: other analyses of the same study whose folders it reads (they are
  added to a study's list, before it, when the config leaves them out);
- `options`: option name -> JSON-schema fragment with a default; the config
  sets them per study and they are validated (errors name the field);
- `trains`: whether the analysis needs a study with runs (arch and gradcheck do not);
- `plan_params`: plan-wide values beyond the study's runs that it depends on;
- `extra_inputs`: files below the results folder it reads beyond its study's runs.

Adding an analysis is one module that calls `register(Analysis(...))`, plus
its name in a study's `analyses:` list. A module outside the package can be
loaded with the config's `analysis_plugins:` (paths to .py files).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FRAGMENT = "fragment.json"


@dataclass(frozen=True)
class Analysis:
    name: str
    description: str
    compute: Callable[[Any], None]  # (AnalysisContext) -> writes files into ctx.out
    fragment: Callable[[Any], dict]  # (AnalysisContext) -> the report fragment, from those files
    reads: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    options: dict[str, dict] = field(default_factory=dict)
    trains: bool = True
    # (plan, study) -> dict of plan-wide values the analysis depends on beyond its
    # study's runs (arch: the models every study trains); its job re-runs when they change
    plan_params: Callable[[Any, Any], dict] | None = None
    # (study) -> further analyses of the study it reads, known only from the study's config
    # (expectations: those whose measures an `expect:` entry names); added like `needs`
    study_needs: Callable[[Any], tuple[str, ...]] | None = None
    # (plan, study) -> files below the results folder it reads beyond its study's runs (search: the earlier
    # stages' candidates tables); they become the job's inputs, so a new one re-runs it
    extra_inputs: Callable[[Any, Any], list[str]] | None = None
    # (study) -> None, or what the study's runs lack for this analysis to measure anything
    # (ics: ics_every > 0): a config error before any run trains, not an empty section after
    requires: Callable[[Any], str | None] | None = None
    module: str = ""  # set by register(): the module whose code (and imports) the job depends on
    source: str = ""  # its file, for plug-ins loaded by path

    def defaults(self) -> dict:
        return {name: schema["default"] for name, schema in self.options.items()}


_ANALYSES: dict[str, Analysis] = {}


def register(analysis: Analysis) -> Analysis:
    """Put an analysis in the registry under its name (twice is an error: names are config keys)."""
    existing = _ANALYSES.get(analysis.name)
    module = analysis.compute.__module__
    source = getattr(sys.modules.get(module), "__file__", "") or ""
    entry = Analysis(**{**analysis.__dict__, "module": module, "source": source})
    if existing is not None and existing.source != entry.source:
        raise ValueError(f"analysis {analysis.name!r} is registered twice ({existing.source}, {entry.source})")
    for name, schema in analysis.options.items():
        if "default" not in schema:
            raise ValueError(f"analysis {analysis.name!r}: option {name!r} needs a default")
    _ANALYSES[analysis.name] = entry
    return entry


def get_analysis(name: str) -> Analysis:
    load_builtin()
    if name not in _ANALYSES:
        raise KeyError(f"unknown analysis {name!r}; registered: {', '.join(list_analyses())}")
    return _ANALYSES[name]


def needs_of(name: str, study) -> tuple[str, ...]:
    """The analyses of `study` whose folders analysis `name` reads: its `needs` and its study_needs."""
    entry = get_analysis(name)
    extra = entry.study_needs(study) if entry.study_needs else ()
    return tuple(dict.fromkeys((*entry.needs, *extra)))


def list_analyses() -> list[str]:
    load_builtin()
    return sorted(_ANALYSES)


# Modules of the package that are machinery, not analyses.
MACHINERY = ("registry", "runner", "collect", "formats", "evidence", "measures")


def builtin_modules() -> list[str]:
    """Every other module of bnlab/analyses/ is an analysis: adding one is adding a file."""
    folder = Path(__file__).parent
    return sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_") and p.stem not in MACHINERY)


def load_builtin() -> None:
    """Import the package's analysis modules (importing one registers it)."""
    for module in builtin_modules():
        importlib.import_module(f"bnlab.analyses.{module}")


def load_plugin(path: str | Path) -> None:
    """Import a .py file that registers analyses (the config's analysis_plugins)."""
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"analysis plug-in {path} does not exist")
    name = "bnlab_plugin_" + "".join(c if c.isalnum() else "_" for c in path.stem)
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
        return
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


# ------------------------------------------------------------ fragment parts
def figure(file: str, caption: str) -> dict:
    return {"file": file, "caption": caption}


def table(caption: str, header: list[str], rows: list[list], diverged: list[bool] | None = None,
          text: bool = False, notes: list[str] | None = None) -> dict:
    """A table part; `diverged` marks rows the report shows as diverged; `text`: cells are sentences,
    set left-aligned (numbers are right-aligned); `notes`: sentences printed under the table, for what
    several rows share (a long caption would part from its table at a page break)."""
    marks = diverged or [False] * len(rows)
    out = {"caption": caption, "header": list(header),
           "rows": [{"cells": [str(c) for c in row], "diverged": bool(d)} for row, d in zip(rows, marks)]}
    if text:
        out["text"] = True
    if notes:
        out["notes"] = [str(n) for n in notes]
    return out


def fragment(*, figures=(), tables=(), findings=(), references=(), stats=None, background=(), data=()) -> dict:
    """`background`: [{"title", "source", "paragraphs": [str]}], explanations the report prints as boxes;
    `data`: [{"file", "caption"}], what the analysis's CSV tables hold (`snakemake --report` shows them)."""
    out = {"figures": list(figures), "tables": list(tables), "findings": list(findings),
           "references": list(references), "stats": dict(stats or {})}
    if background:
        out["background"] = list(background)
    if data:
        out["data"] = list(data)
    return out
