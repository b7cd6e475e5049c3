"""Run one analysis of one study, and resolve the analyses a study lists against the registry."""

from __future__ import annotations

import copy
import dataclasses
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema

from bnlab.analyses.registry import FRAGMENT, Analysis, get_analysis, list_analyses, load_plugin, needs_of
from bnlab.config import ConfigError, Plan, StudyPlan
from bnlab.params import RunSpec
from bnlab.runfolder import read_json, write_json

# Every study that trains starts with its summary (tables, findings) and learning curves.
TRAIN_DEFAULT = ("summary", "learning_curves")
# Analyses a study gets when its config has the key: its declared pairs, then its verdicts, last.
BY_CONFIG_KEY = (("compare", "comparisons"), ("expect", "expectations"))


@dataclass
class AnalysisContext:
    """What an analysis sees: its study, options, and where runs and outputs live."""

    study: StudyPlan
    analysis: Analysis
    options: dict
    results: Path  # results root: run folders are results/runs/<run>
    studies_root: Path  # analysis folders are studies_root/<study>/<analysis>
    extra: dict = field(default_factory=dict)  # plan-wide inputs an analysis asked for (plan_params)

    @property
    def out(self) -> Path:
        return self.folder(self.analysis.name)

    def folder(self, analysis: str) -> Path:
        """Folder of an analysis of this study (its own, or one it `needs`)."""
        return self.studies_root / self.study.name / analysis

    @property
    def run_root(self) -> Path:
        return self.results / "runs"

    def run_dir(self, run: RunSpec) -> Path:
        return self.run_root / run.relative_dir()

    @property
    def where(self) -> str:
        """'on Fashion-MNIST', for captions and titles."""
        return self.study.dataset_note()


def run_analysis(study: StudyPlan, name: str, *, results: str | Path, studies_root: str | Path | None = None,
                 options: dict | None = None, extra: dict | None = None) -> dict:
    """Compute one analysis into its folder (emptied first) and write its fragment.json; return the fragment."""
    analysis = get_analysis(name)
    results = Path(results)
    ctx = AnalysisContext(study=study, analysis=analysis,
                          options={**analysis.defaults(), **(options or {})}, results=results,
                          studies_root=Path(studies_root) if studies_root else results / "studies",
                          extra=dict(extra or {}))
    if ctx.out.exists():  # nothing stale from an earlier version survives
        shutil.rmtree(ctx.out)
    ctx.out.mkdir(parents=True)
    analysis.compute(ctx)
    frag = analysis.fragment(ctx)
    for fig in frag.get("figures", []):
        if not (ctx.out / fig["file"]).is_file():
            raise FileNotFoundError(f"analysis {name!r} lists figure {fig['file']!r} but did not write it")
    write_json(ctx.out / FRAGMENT, {"analysis": name, **frag})
    return frag


def analysis_job(study: dict, analysis: str, out: str | Path, options: dict, extra: dict,
                 plugins: list[str], threads: int = 1) -> None:
    """One Snakemake analysis job: load the config's plug-ins, run the analysis into `out`
    (results/studies/<study>/<analysis>). `study` is StudyPlan.to_data(), as the rule's params carry it.

    torch's intra-op threads are the job's Snakemake threads: by default torch
    takes every core, and an analysis doing many small tensor operations (the
    gradient check, the landscape probes) beside a training job then spins on
    cores that job holds (the gradient check beside a one-thread job: 46.7 s
    on torch's 2 threads, 10.0 s on 1).
    """
    import torch

    torch.set_num_threads(max(1, int(threads)))
    for path in plugins:  # analyses registered outside the package
        load_plugin(path)
    out = Path(out)
    run_analysis(StudyPlan.from_data(study), analysis, results=out.parents[2], options=options, extra=extra)
    print(f"wrote {out}")


def read_fragment(studies_root: str | Path, study: str, analysis: str) -> dict:
    return read_json(Path(studies_root) / study / analysis / FRAGMENT)


# ------------------------------------------------------- plan resolution
def resolve_study_analyses(study: StudyPlan) -> StudyPlan:
    """The study's analyses in report order, each `needs` added before its first user, options validated.

    Raises ConfigError naming the field (studies.<name>.analyses...) for an
    unknown analysis, an unknown or invalid option, or an analysis that needs
    runs in a study that trains nothing.
    """
    where = f"studies.{study.name}.analyses"
    known = list_analyses()
    _check_expectation_metrics(study, known)  # before the analyses they name are added
    requested = list(study.analyses)
    if study.kind == "train":
        requested = [a for a in TRAIN_DEFAULT if a not in requested] + requested
    for key, name in BY_CONFIG_KEY:
        if getattr(study, key) and name not in requested:
            requested.append(name)
    order: list[str] = []

    def add(name: str, path: str) -> None:
        if name in order:
            return
        if name not in known:
            raise ConfigError(f"config error at '{path}': unknown analysis '{name}'; registered: {', '.join(known)}")
        for need in needs_of(name, study):
            add(need, f"{path} (needed by {name})")
        order.append(name)

    for name in requested:
        add(name, where)
    options = {}
    for name in order:
        analysis = get_analysis(name)
        if analysis.trains and not study.runs:
            raise ConfigError(f"config error at '{where}': analysis '{name}' reads training runs, and study "
                              f"'{study.name}' of kind '{study.kind}' trains none")
        lacking = analysis.requires(study) if analysis.requires and study.runs else None
        if lacking:
            raise ConfigError(f"config error at '{where}': analysis '{name}' of study '{study.name}': {lacking}")
        given = copy.deepcopy(study.analysis_options.get(name, {}))
        unknown = sorted(set(given) - set(analysis.options))
        if unknown:
            allowed = ", ".join(sorted(analysis.options)) or "none"
            raise ConfigError(f"config error at '{where}.{name}.{unknown[0]}': analysis '{name}' has no option "
                              f"'{unknown[0]}'; its options: {allowed}")
        for key, value in given.items():
            schema = {k: v for k, v in analysis.options[key].items() if k != "default"}
            try:
                jsonschema.validate(value, schema)
            except jsonschema.ValidationError as err:
                hint = f" ({schema['description']})" if "description" in schema else ""
                raise ConfigError(f"config error at '{where}.{name}.{key}': {err.message}{hint}") from None
        options[name] = {**analysis.defaults(), **given}
    return dataclasses.replace(study, analyses=order, analysis_options=options)


def _check_expectation_metrics(study: StudyPlan, known: list[str]) -> None:
    """Each `expect:` metric is a run-table column, train_test_gap, or <analysis>.<measure> of a known analysis."""
    from bnlab.analyses.collect import METRIC_COLUMNS  # the run table's columns

    numeric = [c for c in METRIC_COLUMNS if c not in ("status", "device")] + ["train_test_gap"]
    for i, exp in enumerate(study.expect):
        metric, where = exp.get("metric", ""), f"studies.{study.name}.expect[{i}].metric"
        if "." in metric:
            source = metric.split(".", 1)[0]
            if source not in known:
                raise ConfigError(f"config error at '{where}': '{metric}' names analysis '{source}', which is not "
                                  f"registered; registered: {', '.join(known)}")
        elif not study.runs:
            raise ConfigError(f"config error at '{where}': study '{study.name}' trains nothing, so its "
                              f"expectations read an analysis's measures: <analysis>.<measure>")
        elif metric not in numeric:
            raise ConfigError(f"config error at '{where}': unknown metric '{metric}'; allowed: "
                              f"{', '.join(numeric)}, or <analysis>.<measure>")


def resolve_plan(plan: Plan) -> Plan:
    """Every study's analyses resolved (see resolve_study_analyses)."""
    return dataclasses.replace(plan, studies={n: resolve_study_analyses(s) for n, s in plan.studies.items()})


def plan_extra(plan: Plan, study: StudyPlan, name: str) -> dict:
    """Plan-wide values an analysis declared it depends on (for its job's params)."""
    hook = get_analysis(name).plan_params
    return hook(plan, study) if hook else {}
