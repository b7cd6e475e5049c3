"""Cell selectors: the run parameters a config entry names a cell by (`labels`, `compare`, `expect`),
made canonical and checked against the study's runs when the config is read.

A selector is any subset of the run parameters; its canonical form is text as in run-folder names
(0.001 and "1e-3" are both "0.001"), so it compares with a run's `as_strings()`. Plan layer.
"""

from __future__ import annotations

from typing import Any

from bnlab.errors import ConfigError, path_text
from bnlab.params import format_widths, value_text
from bnlab.schema import check_param, coerce_numbers


def canonical_partial(partial: dict) -> dict[str, str]:
    """A selector (or an exclusion entry) as canonical text: 0.001 == '1e-3'."""
    return {key: format_widths(value) if key == "widths" else value_text(value)
            for key, value in coerce_numbers(partial).items()}


def check_cell(study: Any, partial: dict, where: list, one: bool) -> dict[str, str]:
    """A cell selector checked against the study (a StudyPlan): known parameters, at least one run, one cell
    if `one`; returned canonical."""
    for key, value in partial.items():
        check_param(key, value, where + [key])
    canonical = canonical_partial(partial)
    chosen = study.select(canonical) if study.runs else []
    if not chosen:
        raise ConfigError(f"config error at '{path_text(where)}': {partial} matches no run of study "
                          f"'{study.name}'")
    labels = list(dict.fromkeys(study.label(r) for r in chosen))
    if one and len(labels) > 1:
        raise ConfigError(f"config error at '{path_text(where)}': {partial} matches {len(labels)} cells "
                          f"({'; '.join(labels[:4])}{'; ...' if len(labels) > 4 else ''}); name one cell")
    return canonical


def check_names_tell_cells_apart(study: Any, where: list) -> None:
    """Two cells (runs apart from the seed) must not share a label once `labels:` names them."""
    if not study.names:
        return
    seen: dict[str, str] = {}
    for run in study.runs:
        cell = ", ".join(f"{a}={run.as_strings()[a]}" for a in study.axes)
        label = study.label(run)
        if seen.setdefault(label, cell) != cell:
            raise ConfigError(f"config error at '{path_text(where)}': cells {seen[label]} and {cell} are both "
                              f"called '{label}'; give their names cells that tell them apart")
