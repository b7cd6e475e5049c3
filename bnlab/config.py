"""Config loading and study expansion: YAML config -> validated plan of runs.

Everything a user can get wrong in the config is caught before Snakemake plans
a job, with a message that names the field and what is allowed. This module
loads the config, fills in the schema's defaults (bnlab.schema), resolves each
run's parameters from their declarations (bnlab.params: where a parameter
applies) and expands every study into its runs; a feature's own entries are
checked by that feature: cell selectors and claims (bnlab.cells,
bnlab.claims), search stages (bnlab.search), range-test picks
(bnlab.lr_picks), data limits (bnlab.data.limits). The plan it returns is
what the rules expand into jobs.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from bnlab.cells import canonical_partial, check_cell, check_names_tell_cells_apart
from bnlab.claims import EXPECT_NUMBERS, check_expectation
from bnlab.data.limits import DataLimitError, check_data_limits
from bnlab.errors import ConfigError, path_text
from bnlab.instruments import instruments
from bnlab.lr_picks import check_pick_sources
from bnlab.params import (
    APPLIES,
    NOT_APPLICABLE,
    PARAM_NAMES,
    POLICY_PARAMS,
    RUN_PARAMETERS,
    Applies,
    RunSpec,
    format_widths,
    is_pick,
    value_text,
)
from bnlab.schema import check, check_param, coerce_numbers, fill_defaults, load_schema
from bnlab.search import check_search_stages

__all__ = ["ConfigError", "Plan", "StudyPlan", "build_plan", "config_hash", "load_config", "load_schema",
           "resolve_run", "validate_config"]




# Resources a study may set for its training jobs (study key `resources`), over `execution`'s.
RESOURCE_KEYS = ("mem_mb", "runtime_min", "gpus_per_run")


# ------------------------------------------------------------------- plan
LABEL_AXES = 6  # above this many varying axes, a run is named by how it differs from the study's base


@dataclass
class StudyPlan:
    """One study: its text for the report and its runs, in config order."""

    name: str
    title: str
    question: str
    source: str
    notes: str
    runs: list[RunSpec]  # empty for studies that train nothing (kind arch, gradcheck)
    axes: list[str] = field(default_factory=list)  # parameters that vary, seed excluded
    seeds: list[int] = field(default_factory=list)
    analyses: list[str] = field(default_factory=list)  # in report order (bnlab.analyses resolves prerequisites)
    analysis_options: dict[str, dict] = field(default_factory=dict)  # analysis -> its options from the config
    references: list[dict] = field(default_factory=list)
    kind: str = "train"
    # claims checked against the runs (expectations analysis) and declared pairs (comparisons);
    # their cell selectors are canonical text like references' `match`
    expect: list[dict] = field(default_factory=list)
    compare: list[dict] = field(default_factory=list)
    # names of cells (`labels:`): (canonical cell selector, name), the first that matches a run names it
    names: list[tuple[dict, str]] = field(default_factory=list)
    resources: dict = field(default_factory=dict)  # mem_mb / runtime_min / gpus_per_run over `execution`'s
    # the library's scale this study was written out at ("" for an inline study), why that scale departs
    # from the seed, the seed's stated setting (canonical text), and a dataset fallback's note
    scale: str = ""
    scale_why: str = ""
    seeds_at_scales: dict[str, int] = field(default_factory=dict)  # library studies: seeds per scale
    seed_setting: dict[str, str] = field(default_factory=dict)
    setting_note: str = ""
    options: dict = field(default_factory=dict)  # a kind's options (gradcheck: its dataset)

    # -- as plain data (Snakemake rule params) -------------------------------
    # Snakemake compares a job's params with the last run's only where they are plain data (it skips any
    # other object), so a rule that carried a StudyPlan would not re-run when a title or a claim changed.
    def to_data(self) -> dict:
        """Every field as dicts, lists and scalars (runs by their typed parameters); from_data inverts it."""
        def plain(name: str):
            if name == "runs":
                return [asdict(run) for run in self.runs]
            if name == "names":
                return [[dict(cell), called] for cell, called in self.names]
            return copy.deepcopy(getattr(self, name))

        return {f.name: plain(f.name) for f in fields(self)}  # in field order: its repr is what Snakemake compares

    @classmethod
    def from_data(cls, data: dict) -> "StudyPlan":
        values = dict(data)
        values["runs"] = [RunSpec(**run) for run in data["runs"]]
        values["names"] = [(cell, name) for cell, name in data["names"]]
        return cls(**values)

    def select(self, partial: dict) -> list[RunSpec]:
        """Runs whose parameters match every key of a canonical partial (see _canonical_partial)."""
        return [r for r in self.runs if all(r.as_strings().get(k) == v for k, v in partial.items())]

    @property
    def datasets(self) -> list[str]:
        return sorted({r.dataset for r in self.runs})

    def seed_differences(self) -> list[str]:
        """Where this study's runs differ from the setting its seed states (seed_setting), in words:
        ['3 epochs (seed: 5 epochs)', '20,000 training images (seed: every training image)']."""
        from bnlab.setting import differences

        if self.runs:
            ours = {p: {r.as_strings()[p] for r in self.runs} for p in self.seed_setting}
        else:  # a study that trains nothing reads its dataset from its options (gradcheck)
            ours = {"dataset": {self.options["dataset"]}} if "dataset" in self.options else {}
        return differences(ours, self.seed_setting, "seed")

    def dataset_note(self) -> str:
        """'on Fashion-MNIST': which data the study actually used, for titles."""
        from bnlab.data import display_name

        return "on " + " and ".join(display_name(d) for d in self.datasets)

    def label(self, run: RunSpec) -> str:
        """Short legend text of a run: the values of the study's varying axes.

        A study varying more than LABEL_AXES parameters (a search that changes one or two at a time
        from a base network) names a run by what differs from its most common setting instead,
        "base" for that setting: the full text would repeat every varying axis in every legend entry."""
        s = run.as_strings()
        for i, (cell, name) in enumerate(self.names):  # a name people use, then what varies within its cell
            if all(s.get(k) == v for k, v in cell.items()):
                rest = [f"{a}={s[a]}" for a in self._varying_within[i] if s[a] != NOT_APPLICABLE]
                return ", ".join([name, *rest])
        # "na" marks a parameter that does not apply to this run (init_scale of xavier, say)
        if "batch_growth" in self.analyses:
            # lr/batch policies read better in words; other varying axes follow as key=value
            rest = [f"{a}={s[a]}" for a in self.axes if a not in POLICY_PARAMS and s[a] != NOT_APPLICABLE]
            return ", ".join([run.lr_batch_policy()] + rest)
        if len(self.axes) > LABEL_AXES:
            base = self._base_setting
            return ", ".join(f"{a}={s[a]}" for a in self.axes if s[a] not in (base[a], NOT_APPLICABLE)) or "base"
        return self._full_label(s)

    def _full_label(self, values: dict) -> str:
        return ", ".join(f"{a}={values[a]}" for a in self.axes if values[a] != NOT_APPLICABLE) or "all runs"

    @cached_property
    def _varying_within(self) -> list[list[str]]:
        """Per named cell, the study's axes that still vary among the runs it selects (lr within 'MLP')."""
        out = []
        for cell, _ in self.names:
            values = [r.as_strings() for r in self.select(cell)]
            out.append([a for a in self.axes if len({v[a] for v in values}) > 1])
        return out

    @cached_property  # labels are asked for run by run; the study's runs do not change once planned
    def _base_setting(self) -> dict:
        """The most common value of every varying axis over the study's settings (a tie goes to the
        config's first). Two distinct settings never share a name by their differences from it: they
        differ on some axis, and there at least one of them differs from the base ("na" is never a
        difference of its own: it follows from another parameter, the optimizer or the schedule)."""
        settings = list({self._full_label(v): v for v in (r.as_strings() for r in self.runs)}.values())
        base = {}
        for axis in self.axes:
            values = [v[axis] for v in settings]
            base[axis] = max(dict.fromkeys(values), key=values.count)
        return base


@dataclass
class Plan:
    config: dict
    studies: dict[str, StudyPlan]

    def to_data(self) -> dict:
        """The config and every study as plain data (see StudyPlan.to_data); from_data inverts it."""
        return {"config": copy.deepcopy(self.config),
                "studies": {name: study.to_data() for name, study in self.studies.items()}}

    @classmethod
    def from_data(cls, data: dict) -> "Plan":
        return cls(config=data["config"],
                   studies={name: StudyPlan.from_data(study) for name, study in data["studies"].items()})

    @property
    def runs(self) -> list[RunSpec]:
        """Every distinct run of every study (studies share identical cells)."""
        seen: dict[str, RunSpec] = {}
        for study in self.studies.values():
            for run in study.runs:
                seen.setdefault(run.relative_dir(), run)
        return list(seen.values())

    @property
    def datasets(self) -> list[str]:
        return sorted({r.dataset for r in self.runs})

    def run_resources(self, run: RunSpec) -> dict[str, int]:
        """Cluster resources of one training job: `execution`'s, raised by every study that trains the run."""
        execution = self.config["execution"]
        out = {key: int(execution[key]) for key in RESOURCE_KEYS}
        target = run.relative_dir()
        for study in self.studies.values():
            if study.resources and any(r.relative_dir() == target for r in study.runs):
                for key, value in study.resources.items():
                    out[key] = max(out[key], int(value))
        return out

    @property
    def train_studies(self) -> list[str]:
        return [n for n, s in self.studies.items() if s.kind == "train"]


    @property
    def config_hash(self) -> str:
        return config_hash(self.config)


def config_hash(config: dict) -> str:
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]




def resolve_run(params: dict, where: str = "run") -> RunSpec:
    """Validated, canonical RunSpec from a full parameter dict."""
    params = coerce_numbers(params)
    check(params, {"$ref": "#/$defs/run"}, [where])
    p = dict(params)
    for name, applies in APPLIES.items():  # decided on the values as given, before any of them becomes "na"
        p[name] = _applied(name, applies, params, where)
    _check_schedule(params, where)
    _check_batch_growth(params, where)
    return RunSpec.from_strings(p)


def _applied(name: str, applies: Applies, params: dict, where: str) -> Any:
    """A parameter's canonical value where it applies (its declared x-applies), "na" where it does not."""
    value, on = params[name], params[applies.param]
    if not applies.holds(params):
        if applies.refuse_elsewhere and value != "default":
            raise ConfigError(f"config error at '{where}.{name}': {applies.param} '{on}' takes no {name}; "
                              f"{name} applies {applies.where_text()}")
        return NOT_APPLICABLE
    if value == "default" and applies.required:
        raise ConfigError(f"config error at '{where}.{name}': {applies.param} '{on}' needs {name} "
                          f"({RUN_PARAMETERS[name]['description']})")
    if value == "default":
        value = applies.defaults.get(on, value)
    return format_widths(value) if name == "widths" else value_text(value)


def _check_schedule(params: dict, where: str) -> None:
    """A rate range runs upwards: lr_min below lr wherever both are numbers."""
    low, high = params["lr_min"], params["lr"]
    if APPLIES["lr_min"].holds(params) and not is_pick(low) and not is_pick(high) and low >= high:
        raise ConfigError(f"config error at '{where}.lr_min': must be below lr ({low} >= {high})")


def _check_batch_growth(params: dict, where: str) -> None:
    """A growing batch starts below its largest, at a constant lr, with no instrument that needs whole batches."""
    if params["batch_growth_every"] == 0:
        return
    if params["lr_schedule"] != "constant":
        raise ConfigError(f"config error at '{where}.lr_schedule': batch growth runs at a constant lr (seed 003 "
                          f"p. 2.3), not '{params['lr_schedule']}'; batch_growth_via: lr gives the matching lr decay")
    if params["batch_growth_max"] <= params["batch_size"]:
        raise ConfigError(f"config error at '{where}.batch_growth_max': must be above batch_size "
                          f"({params['batch_growth_max']} <= {params['batch_size']})")
    for inst in instruments():  # as the instrument declares (bnlab/instruments.py: with_batch_growth)
        if inst.switch and params[inst.switch] and not inst.with_batch_growth:
            raise ConfigError(f"config error at '{where}.{inst.switch}': {inst.description} are not taken in "
                              "batch-growth runs (each measurement needs the whole batch in one pass)")


# Significant digits of a linspace axis's values: they go into folder names, and 0.00527263 reads
# better than 0.005272631578947368 (seed 001's coarse grid, 20 values on [1e-5, 1e-1]).
LINSPACE_DIGITS = 6


def _axis_values(values: Any, where: list) -> list:
    """A grid axis: a list as written, {linspace: [lo, hi, n]} (n evenly spaced values, ends included) or
    {draws: n, near: study} (draw1-<study> ... draw<n>-<study>: bnlab/search.py)."""
    if isinstance(values, list):
        return values
    if "linspace" in values:
        lo, hi, n = values["linspace"]
        try:  # YAML reads 1e-5 (no dot) as text
            lo, hi = float(lo), float(hi)
        except ValueError:
            raise ConfigError(f"config error at '{path_text(where)}.linspace': lo and hi must be numbers, "
                              f"not {values['linspace'][:2]}") from None
        if n < 2 or not lo < hi:
            raise ConfigError(f"config error at '{path_text(where)}.linspace': needs lo < hi and at least "
                              f"2 values, not {values['linspace']}")
        return [float(f"{lo + (hi - lo) * i / (n - 1):.{LINSPACE_DIGITS}g}") for i in range(n)]
    return [f"draw{i}-{values['near']}" for i in range(1, values["draws"] + 1)]


def _analysis_entries(entries: list, where: list) -> tuple[list[str], dict[str, dict]]:
    """'name' or {name: {options}} items -> names in order and each one's options."""
    names, options = [], {}
    for i, entry in enumerate(entries):
        name, opts = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
        if name in names:
            raise ConfigError(f"config error at '{path_text(where + [i])}': analysis '{name}' is listed twice")
        names.append(name)
        options[name] = dict(opts)
    return names, options


def _expand_study(name: str, study: dict, defaults: dict) -> StudyPlan:
    where = ["studies", name]
    analyses, analysis_options = _analysis_entries(study["analyses"], where + ["analyses"])
    if study["kind"] != "train":
        # Studies that train nothing: the grid keys would be silently ignored, so refuse them.
        for key in ("fixed", "grid", "exclude", "analyses", "references", "compare", "labels", "resources"):
            if study[key]:
                raise ConfigError(f"config error at '{path_text(where + [key])}': a study of kind "
                                  f"'{study['kind']}' trains nothing and takes no {key}")
        # The kind names its one analysis; the study's options are that analysis's options.
        plan = StudyPlan(name=name, title=study["title"], question=study["question"], source=study["source"],
                         notes=study["notes"], runs=[], seeds=list(study["seeds"]), kind=study["kind"],
                         analyses=[study["kind"]],
                         analysis_options={study["kind"]: dict(study["options"])},
                         options=dict(study["options"]), **_setting(study, where))
        # expectations about the numbers its analysis computes (no cells: it has no runs)
        plan.expect = [check_expectation(plan, e, where + ["expect", i]) for i, e in enumerate(study["expect"])]
        return plan
    if study["options"]:
        raise ConfigError(f"config error at '{path_text(where + ['options'])}': a training study sets its "
                          "analyses' options in its analyses list ({name: {option: value}})")
    for key, value in study["fixed"].items():
        check_param(key, value, where + ["fixed", key])
    grids = study["grid"] if isinstance(study["grid"], list) else [study["grid"]]
    grids = [{key: _axis_values(values, where + (["grid", gi, key] if isinstance(study["grid"], list)
                                                 else ["grid", key]))
              for key, values in axes.items()} for gi, axes in enumerate(grids)]
    for gi, axes in enumerate(grids):
        for key, values in axes.items():
            for vi, value in enumerate(values):
                gpath = ["grid", gi, key, vi] if isinstance(study["grid"], list) else ["grid", key, vi]
                check_param(key, value, where + gpath)
    excludes = []
    for ei, entry in enumerate(study["exclude"]):
        for key, value in entry.items():
            check_param(key, value, where + ["exclude", ei, key])
        excludes.append(canonical_partial(entry))
    setting = _setting(study, where)
    references = []
    for ri, ref in enumerate(study["references"]):
        for part in ("match", "setup"):
            for key, value in (ref.get(part) or {}).items():
                check_param(key, value, where + ["references", ri, part, key])
        setup = canonical_partial(ref["setup"]) if "setup" in ref else dict(setting["seed_setting"])
        if ref.get("band") and not setup and not ref.get("differs"):
            raise ConfigError(f"config error at '{path_text(where + ['references', ri, 'band'])}': a band is "
                              "scored only against the published setup; give the reference a `setup` (run "
                              "parameters: dataset, epochs, ...) or the study a `seed_setting`")
        references.append({**ref, "match": canonical_partial(ref["match"]), "setup": setup})

    runs: dict[str, RunSpec] = {}
    varying: set[str] = set()
    for axes in grids:
        keys = list(axes)
        varying.update(k for k in keys if len(axes[k]) > 1)
        for combo in itertools.product(*(axes[k] for k in keys)):
            for seed in study["seeds"]:
                params = {**defaults, **study["fixed"], **dict(zip(keys, combo)), "seed": seed}
                run = resolve_run(params, where=path_text(where))
                text = run.as_strings()
                if any(all(text.get(k) == v for k, v in ex.items()) for ex in excludes):
                    continue
                runs.setdefault(run.relative_dir(), run)
    if not runs:
        raise ConfigError(f"config error at '{path_text(where)}': the grid and exclusions leave no run")
    run_list = list(runs.values())
    # Axes = parameters that really differ between runs (joined grids can vary
    # a key that no single grid varies), in the canonical parameter order.
    values = {p: {r.as_strings()[p] for r in run_list} for p in PARAM_NAMES if p != "seed"}
    axes_list = [p for p in PARAM_NAMES if p != "seed" and len(values[p]) > 1]
    plan = StudyPlan(
        name=name,
        title=study["title"],
        question=study["question"],
        source=study["source"],
        notes=study["notes"],
        runs=run_list,
        axes=axes_list,
        seeds=list(study["seeds"]),
        analyses=analyses,
        analysis_options=analysis_options,
        references=references,
        resources=dict(study["resources"]),
        **setting,
    )
    plan.names = [(check_cell(plan, entry["cell"], where + ["labels", i, "cell"], one=False), entry["name"])
                  for i, entry in enumerate(study["labels"])]
    check_names_tell_cells_apart(plan, where + ["labels"])
    plan.expect = [check_expectation(plan, e, where + ["expect", i]) for i, e in enumerate(study["expect"])]
    plan.compare = [{**c, "a": check_cell(plan, c["a"], where + ["compare", i, "a"], one=True),
                     "b": check_cell(plan, c["b"], where + ["compare", i, "b"], one=True)}
                    for i, c in enumerate(study["compare"])]
    return plan


def _setting(study: dict, where: list) -> dict:
    """A study's scale, why it departs from the seed, and the seed's setting as canonical text."""
    for key, value in study["seed_setting"].items():
        check_param(key, value, where + ["seed_setting", key])
    return {"scale": study.get("scale", ""), "scale_why": study["scale_why"],
            "seeds_at_scales": dict(study["seeds_at_scales"]),
            "seed_setting": canonical_partial(study["seed_setting"]), "setting_note": study["setting_note"]}


def validate_config(config: dict) -> dict:
    """Validated copy of the config with every default filled in; a scaled config's studies written out
    from the library first (bnlab.studies.compose)."""
    from bnlab.studies import LibraryError, compose, shrink

    try:
        cfg = copy.deepcopy(shrink(compose(config)))
    except LibraryError as err:
        raise ConfigError(str(err)) from None
    root = load_schema()
    if isinstance(cfg.get("defaults"), dict):
        cfg["defaults"] = coerce_numbers(cfg["defaults"])
    for study in (cfg.get("studies") or {}).values():
        if isinstance(study, dict) and isinstance(study.get("expect"), list):
            study["expect"] = [coerce_numbers(e, EXPECT_NUMBERS) if isinstance(e, dict) else e
                               for e in study["expect"]]
    fill_defaults(cfg, root, root)
    check(cfg, {k: v for k, v in root.items() if k != "$defs"}, [])
    return cfg


def build_plan(config: dict) -> Plan:
    """Validate the config and expand every study into its runs."""
    cfg = validate_config(config)
    if "seed" in config.get("defaults", {}):
        raise ConfigError("config error at 'defaults.seed': set seeds with each study's 'seeds' list")
    studies = {name: _expand_study(name, study, cfg["defaults"]) for name, study in cfg["studies"].items()}
    check_pick_sources(studies)
    check_search_stages(studies)
    try:
        check_data_limits(cfg, studies)  # batch sizes and val_size against the datasets' image counts
    except DataLimitError as err:
        raise ConfigError(str(err)) from None
    return Plan(config=cfg, studies=studies)


def load_config(path: str | Path) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh) or {}
