"""A search stage's outcome, handed to the next stage: run folders of a study -> its best value and draws.

Seed 001 section 4 searches the L2 strength in stages: a coarse grid, then
random values in a narrower range around the best, then the best one
retrained for longer. A run of a later stage writes its value as a reference
to the earlier study (bnlab.params.SEARCH_REF):

- `best-<study>`: the value whose runs in <study> reached the highest final
  validation accuracy (the mean over the runs of that value, seeds included;
  a diverged run counts as the lowest, so it is never best);
- `draw<i>-<study>`: the i-th of seeded uniform draws between the grid
  neighbours of that best value (the lowest or highest value itself at the
  edge). With the seed's 20 values on [1e-5, 1e-1] and the best the second,
  that range is [1e-5, 0.0105], the seed's [1e-5, 1e-2].

The study's candidates table (one row per run with the value it trained
with) is its own Snakemake job (rules/train.smk, `search_picks`), an input
of every run that refers to the study, so a new outcome of one stage
retrains the stages after it and nothing else. The numbers are computed
from that table when a run starts, and recorded in its metrics.json
("picked"). Torch-free.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bnlab.errors import ConfigError
from bnlab.params import SEARCHABLE_PARAMS, RunSpec, search_ref
from bnlab.runfolder import METRICS, read_json

SEARCH_TABLE = "search.csv"  # results/picks/<study>/search.csv
DRAW_SEED = 0  # the generator of every draw<i>-<study>: the same draws on every machine and re-run
METRIC = "final_val_acc"  # what "best" means: the seed chose "based on validation accuracy"
COLUMNS = ["run_dir", "seed", "status", METRIC, "final_test_acc", *SEARCHABLE_PARAMS]


def trained_value(run: RunSpec, metrics: dict, param: str) -> float:
    """The number a run trained with: its own, or the one its reference resolved to (metrics.json 'picked')."""
    value = getattr(run, param)
    if search_ref(value) is None:
        return float(value)
    return float(metrics["picked"][param]["value"])


def candidates(runs: list[RunSpec], run_root: str | Path) -> pd.DataFrame:
    """One row per run of a study: its folder, seed, status, accuracies and searchable values."""
    rows = []
    for run in runs:
        metrics = read_json(Path(run_root) / run.relative_dir() / METRICS)
        rows.append({"run_dir": run.relative_dir(), "seed": run.seed, "status": metrics.get("status"),
                     METRIC: metrics.get(METRIC), "final_test_acc": metrics.get("final_test_acc"),
                     **{p: trained_value(run, metrics, p) for p in SEARCHABLE_PARAMS}})
    return pd.DataFrame(rows, columns=COLUMNS)


def write_candidates(runs: list[RunSpec], run_root: str | Path, out: str | Path) -> pd.DataFrame:
    table = candidates(runs, run_root)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    return table


def scores(table: pd.DataFrame, param: str) -> pd.DataFrame:
    """Mean final validation accuracy per value of `param` (diverged or unfinished runs score -inf), by value."""
    score = table[METRIC].where(table.status == "ok").astype(float).fillna(-math.inf)
    out = (table.assign(score=score).groupby(param, sort=True)
           .agg(score=("score", "mean"), runs=("score", "size")).reset_index())
    return out.rename(columns={param: "value"})


def best(table: pd.DataFrame, param: str) -> dict:
    """The best value and its grid neighbours: {value, score, lo, hi}. The lowest value wins a tie."""
    by_value = scores(table, param)
    if by_value.empty or not math.isfinite(by_value.score.max()):
        raise ValueError(f"no run finished with a validation accuracy, so no best {param}")
    i = int(by_value.score.to_numpy().argmax())  # first maximum: the lowest value of a tie
    values = by_value.value.to_list()
    return {"value": float(values[i]), "score": float(by_value.score.iloc[i]),
            "lo": float(values[max(i - 1, 0)]), "hi": float(values[min(i + 1, len(values) - 1)])}


def draw(lo: float, hi: float, index: int, seed: int = DRAW_SEED) -> float:
    """The index-th (1-based) of uniform draws on [lo, hi] from one seeded generator.

    Draws are taken in sequence, so draw i does not depend on how many the study asks for.
    """
    if index < 1:
        raise ValueError(f"draws count from 1, not {index}")
    return float(np.random.default_rng(seed).uniform(lo, hi, size=index)[-1])


def resolve(param: str, reference: str, table: pd.DataFrame) -> dict:
    """The value a reference stands for, with what it was computed from (recorded in metrics.json 'picked')."""
    kind, index, study = search_ref(reference)
    found = best(table, param)
    record = {"study": study, "kind": kind, "best": found["value"], "best_" + METRIC: found["score"]}
    if kind == "best":
        return {"value": found["value"], **record}
    return {"value": draw(found["lo"], found["hi"], index), **record, "draw": index, "draw_seed": DRAW_SEED,
            "range": [found["lo"], found["hi"]]}


def earlier_stages(studies: dict, name: str) -> list[str]:
    """The studies a study's search references lead back to, earliest first (each once).

    `studies` maps names to objects with `.runs` (bnlab.config.StudyPlan).
    """
    order: list[str] = []

    def visit(current: str) -> None:
        sources = sorted({search_ref(v)[2] for r in studies[current].runs for v in r.searches.values()})
        for source in sources:
            if source not in order:
                visit(source)
                order.append(source)

    visit(name)
    return order


def next_stages(studies: dict, name: str) -> dict[str, list[str]]:
    """The studies whose runs search from study `name`, per searched parameter: {param: [study, ...]}."""
    later: dict[str, set[str]] = {}
    for other, study in studies.items():
        for run in study.runs:
            for param, reference in run.searches.items():
                if search_ref(reference)[2] == name:
                    later.setdefault(param, set()).add(other)
    return {param: sorted(names) for param, names in sorted(later.items())}


def searched_params(runs: list[RunSpec]) -> list[str]:
    return sorted({p for r in runs for p in r.searches})


def check_search_stages(studies: dict[str, Any]) -> None:
    """Read with the config (`studies`: name -> StudyPlan): best-/draw<i>-<study> must name another training study that tries several values of the parameter,
    and the stages must not refer to each other in a circle."""
    sources: dict[str, set[str]] = {}
    for name, study in studies.items():
        for run in study.runs:
            for param, reference in run.searches.items():
                source = search_ref(reference)[2]
                where = f"config error at 'studies.{name}' ({param}: {reference})"
                if source not in studies:
                    raise ConfigError(f"{where}: no study '{source}'; studies: {', '.join(studies)}")
                if source == name:
                    raise ConfigError(f"{where}: a study cannot search from its own runs; put the earlier "
                                      "stage in a study of its own")
                tried = {r.as_strings()[param] for r in studies[source].runs}
                if len(tried) < 2:
                    raise ConfigError(f"{where}: study '{source}' tries {len(tried)} value of {param} "
                                      f"({', '.join(sorted(tried)) or 'no run'}); a search stage needs several")
                sources.setdefault(name, set()).add(source)
    for start in sources:  # follow the references: a circle would never finish
        seen, todo = set(), list(sources[start])
        while todo:
            current = todo.pop()
            if current == start:
                raise ConfigError(f"config error at 'studies.{start}': its search stages refer back to it "
                                  f"(through '{current}')")
            if current not in seen:
                seen.add(current)
                todo.extend(sources.get(current, ()))
