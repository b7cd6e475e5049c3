"""What the Snakefile needs from bnlab: the plan with its analyses resolved, and each job's inputs.

This is the top layer (it sees the config, the analyses and the report), so
the Snakemake rules stay declarative: they ask here which files a
(study, analysis) job reads and which code it runs.
"""

from __future__ import annotations

from pathlib import Path

from bnlab.analyses.registry import get_analysis, load_plugin
from bnlab.analyses.runner import resolve_plan
from bnlab.codegraph import code_closure, file_imports
from bnlab.config import ConfigError, Plan, build_plan

ROOT = Path(__file__).resolve().parents[1]


def load_plan(config: dict) -> Plan:
    """Validated plan: studies expanded into runs, plug-ins loaded, analyses resolved against the registry."""
    plan = build_plan(config)
    for i, path in enumerate(plan.config["analysis_plugins"]):
        try:
            load_plugin(path)
        except (OSError, ImportError, SyntaxError, ValueError) as err:
            raise ConfigError(f"config error at 'analysis_plugins[{i}]': cannot load {path}: {err}") from None
    return resolve_plan(plan)


def _relative(path: Path) -> str:
    """Repository files as paths relative to the working directory when they can be (Snakemake inputs)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def analysis_code(name: str) -> list[str]:
    """Source files an analysis job runs: its module and every bnlab module that imports, transitively.

    They are inputs of its job, so editing any of them re-runs the analysis
    (and the report), never training.
    """
    analysis = get_analysis(name)
    if analysis.module.startswith("bnlab."):
        files = code_closure(analysis.module)
    else:  # a plug-in loaded by path: the file itself and the bnlab code it imports
        files = [Path(analysis.source)] + [f for i in file_imports(analysis.source) for f in code_closure(i.module)]
    return sorted(dict.fromkeys(_relative(Path(f)) for f in files))


def code_files(module: str) -> list[str]:
    """A bnlab module's source and that of every bnlab module it imports (a job's code inputs)."""
    return sorted(dict.fromkeys(_relative(Path(f)) for f in code_closure(module)))


def report_code() -> list[str]:
    return code_files("bnlab.report.render")
