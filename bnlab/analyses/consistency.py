"""One number, one definition, checked: what a study's analyses state for a measure of its runs, against the
study's facts table (the summary's facts.csv, bnlab.analyses.measures).

The summary, the declared comparisons, the expectations and the best-network search each print numbers about the runs' measures; the
Discussion prints the comparisons' and the expectations' numbers again (bnlab.report.discussion). Each of
them reads the run table, so they agree by construction; this module is what shows it, on any results
folder: every per-run value and every mean they state is looked up in the facts table, and each one that
differs is named. `python -m bnlab.analyses.consistency --results results` checks every
study of a built results folder; tests/test_measures.py checks a built study and a changed fact.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

import pandas as pd

from bnlab.analyses.measures import MEASURES
from bnlab.analyses.summary import SUMMARY_METRICS
from bnlab.runfolder import read_json

TOLERANCE = 1e-12  # the same floats read back: anything above is a second computation
GAP = "train_test_gap"  # expectations' derived measure: final train - final test accuracy


def _fact(facts: pd.DataFrame, measure: str, cells: list[str], seed) -> list[float]:
    """The facts' values of `measure` for a run of one of `cells` at `seed` (GAP derived from its two)."""
    if measure == GAP:
        train, test = (_fact(facts, m, cells, seed) for m in ("final_train_acc", "final_test_acc"))
        return [a - b for a, b in zip(train, test)]
    rows = facts[(facts.measure == measure) & facts.cell.isin(cells) & (facts.seed == seed)]
    return [float(v) for v in rows.value if not math.isnan(v)]


def _finished_mean(facts: pd.DataFrame, measure: str, cell: str) -> float:
    values = facts[(facts.measure == measure) & (facts.cell == cell) & (facts.status == "ok")].value.dropna()
    return float(values.mean()) if len(values) else math.nan


# A summary cell whose seeds split (summary.split_text): "96.6, 94.1; 11.3 (ended at chance)".
SPLIT_CELL = re.compile(r"^(?P<trained>[\d., ]*); (?P<chance>[\d., ]*) \(ended at chance\)$")


def _check_split(facts: pd.DataFrame, measure: str, label: str, cell: str, split: re.Match) -> tuple[int, list[str]]:
    """Each per-run value of a split cell (in %, at its printed precision) is a finished run's fact, one for one."""
    printed = sorted(float(v) for part in (split["trained"], split["chance"]) for v in part.split(", ") if v)
    values = facts[(facts.measure == measure) & (facts.cell == label) & (facts.status == "ok")].value.dropna()
    runs = sorted(100 * float(v) for v in values)
    if len(printed) != len(runs) or any(abs(a - b) > 0.05 + TOLERANCE for a, b in zip(printed, runs)):
        return len(printed), [f"summary table {label} {measure}: {cell} != the runs' "
                              f"{', '.join(f'{v:.1f}' for v in runs)}"]
    return len(printed), []


def check_summary(facts: pd.DataFrame, folder: Path) -> tuple[int, list[str]]:
    """summary.csv's means, and the accuracy cells of the summary table as printed (at their precision): a
    mean, or where the cell's seeds split, each run's value."""
    checked, problems = 0, []
    summary = pd.read_csv(folder / "summary" / "summary.csv")
    for column, short in SUMMARY_METRICS:
        for _, row in summary.iterrows():
            mean = _finished_mean(facts, column, row["label"])
            if not math.isnan(mean):
                checked += 1
                if abs(mean - row[f"{short}_mean"]) > TOLERANCE:
                    problems.append(f"summary.csv {row['label']} {column}: {row[f'{short}_mean']} != {mean}")
    table = read_json(folder / "summary" / "fragment.json")["tables"][0]
    header = table["header"]
    for row in table["rows"]:
        label = row["cells"][0]
        for column in ("best_val_acc", "final_train_acc", "final_test_acc"):
            cell = row["cells"][header.index(MEASURES[column].short)]
            split = SPLIT_CELL.match(cell)
            if split:  # per run, not a mean (summary.split_text)
                n, problem = _check_split(facts, column, label, cell, split)
                checked += n
                problems += problem
                continue
            printed = re.match(r"[\d.]+", cell)
            mean = _finished_mean(facts, column, label)
            if printed is None or math.isnan(mean):
                continue
            checked += 1
            if abs(float(printed.group()) / 100 - mean) > 0.0005 + TOLERANCE:
                problems.append(f"summary table {label} {column}: {cell} != {100 * mean:.1f}")
    return checked, problems


def check_comparisons(facts: pd.DataFrame, folder: Path) -> tuple[int, list[str]]:
    """Each comparison's per-seed values (comparisons.csv) and its means over the paired seeds (the stats the
    sentences, the table and the Discussion print)."""
    checked, problems = 0, []
    per_seed = pd.read_csv(folder / "comparisons" / "comparisons.csv")
    stats = read_json(folder / "comparisons" / "fragment.json").get("stats", {}).get("comparisons", [])
    for c in stats:
        rows = per_seed[per_seed.comparison == c["name"]]
        for metric, m in c["metrics"].items():
            paired = []  # the facts of the seeds the comparison paired (both sides finished)
            for _, row in rows[rows.metric == metric].iterrows():
                found = {}
                for side in ("a", "b"):
                    if math.isnan(row[side]):
                        continue
                    found[side] = _fact(facts, metric, [c[f"{side}_label"]], int(row["seed"]))
                    checked += 1
                    if len(found[side]) != 1 or abs(found[side][0] - row[side]) > TOLERANCE:
                        problems.append(f"comparisons {c['name']} {metric} seed {row['seed']} {side}: "
                                        f"{row[side]} != {found[side]}")
                if all(len(found.get(side, [])) == 1 for side in ("a", "b")):
                    paired.append((found["a"][0], found["b"][0]))
            for k, side in enumerate(("a", "b")):
                if m.get(side) is None or not paired:
                    continue
                mean = sum(v[k] for v in paired) / len(paired)
                checked += 1
                if abs(mean - m[side]) > TOLERANCE:
                    problems.append(f"comparisons {c['name']} {metric} mean {side}: {m[side]} != {mean}")
    return checked, problems


def check_expectations(facts: pd.DataFrame, folder: Path) -> tuple[int, list[str]]:
    """Each expectation's stated per-run values of a run measure (another analysis's measures are its own)."""
    checked, problems = 0, []
    for item in read_json(folder / "expectations" / "expectations.json")["items"]:
        metric = item["metric"]
        if metric not in MEASURES and metric != GAP:
            continue
        for entry in item.get("values", []):
            if entry["seed"] is None:
                continue
            found = _fact(facts, metric, entry["cells"], int(entry["seed"]))
            checked += 1
            if not any(abs(v - entry["value"]) <= TOLERANCE for v in found):
                problems.append(f"expectation '{item['claim']}' {metric} seed {entry['seed']} "
                                f"{'/'.join(entry['cells'])}: {entry['value']} != {found}")
    return checked, problems


def check_best_net(facts: pd.DataFrame, folder: Path) -> tuple[int, list[str]]:
    """Each candidate's mean final validation and test accuracy (candidates.csv, which its sentences print)."""
    checked, problems = 0, []
    candidates = pd.read_csv(folder / "best_net" / "candidates.csv")
    for row in candidates.itertuples():
        for column, measure in (("val_acc", "final_val_acc"), ("test_acc", "final_test_acc")):
            stated, mean = getattr(row, column), _finished_mean(facts, measure, row.label)
            if math.isnan(stated) and math.isnan(mean):
                continue
            checked += 1
            if not abs(stated - mean) <= TOLERANCE:
                problems.append(f"best_net {row.label} {column}: {stated} != {mean}")
    return checked, problems


CHECKS = {"summary": check_summary, "comparisons": check_comparisons, "expectations": check_expectations,
          "best_net": check_best_net}


def check_study(folder: Path) -> tuple[int, list[str]]:
    """(numbers checked, inconsistencies) of one study's analysis folder; a study without a facts table (one
    that trains nothing) has nothing to check."""
    facts_path = folder / "summary" / "facts.csv"
    if not facts_path.is_file():
        return 0, []
    facts = pd.read_csv(facts_path)
    checked, problems = 0, []
    for analysis, check in CHECKS.items():
        if (folder / analysis / "fragment.json").is_file():
            n, found = check(facts, folder)
            checked, problems = checked + n, problems + found
    return checked, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="check every number a built study states for a measure of its "
                                                 "runs against its facts table")
    parser.add_argument("--results", default="results", help="the results folder (default: results)")
    args = parser.parse_args(argv)
    studies = sorted(p for p in (Path(args.results) / "studies").iterdir() if p.is_dir())
    total, failures = 0, 0
    for folder in studies:
        checked, problems = check_study(folder)
        total += checked
        failures += len(problems)
        print(f"{folder.name}: {checked} numbers checked, {len(problems)} inconsistent")
        for problem in problems:
            print(f"  {problem}")
    print(f"{len(studies)} studies: {total} numbers checked against their facts tables, {failures} inconsistent")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
