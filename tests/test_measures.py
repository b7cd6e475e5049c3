"""One number, one definition: each measure of a run has one name, and what the summary and the declared
comparisons state for it is the study's facts table (the summary's facts.csv) or its mean."""

import re

import pandas as pd
import pytest

from bnlab.analyses import run_analysis
from bnlab.analyses.measures import MEASURES, name
from bnlab.analyses.summary import SUMMARY_METRICS
from tests.test_comparisons import PAIR, study_with, write_runs

VALUES = {("none", 0): (0.91, 0.880, 0.30, 0.41), ("none", 1): (0.93, 0.874, 0.28, 0.43),
          ("none", 2): (0.90, 0.869, 0.31, 0.45),
          ("hidden", 0): (0.97, 0.931, 0.12, 0.25), ("hidden", 1): (0.96, 0.925, 0.13, 0.27),
          ("hidden", 2): (0.98, 0.938, 0.10, 0.22)}


def test_two_measures_never_share_a_name():
    names = [m.name for m in MEASURES.values()]
    shorts = [m.short for m in MEASURES.values()]
    assert len(set(names)) == len(names) and len(set(shorts)) == len(shorts)
    # the two validation accuracies are told apart by what they evaluate
    assert name("best_val_acc") != name("final_val_acc") and "subset" in name("best_val_acc")


def inconsistencies(facts: pd.DataFrame, folder, study) -> list[str]:
    """Every number the summary and comparisons state for a run's measure, against the facts table."""
    problems = []
    ok = facts[facts.status == "ok"]
    summary = pd.read_csv(folder / "summary" / "summary.csv")
    for column, short in SUMMARY_METRICS:
        for _, row in summary.iterrows():
            values = ok[(ok.measure == column) & (ok.cell == row["label"])].value.dropna()
            if len(values) and abs(values.mean() - row[f"{short}_mean"]) > 1e-12:
                problems.append(f"summary.csv {row['label']} {column}: {row[f'{short}_mean']} != {values.mean()}")
    # the summary table as printed: each accuracy cell's mean, at its printed precision
    frag = pd.read_json(folder / "summary" / "fragment.json", typ="series")
    table = frag["tables"][0]
    header = table["header"]
    for row in table["rows"]:
        label = row["cells"][0]
        for column in ("best_val_acc", "final_train_acc", "final_test_acc"):
            cell = row["cells"][header.index(MEASURES[column].short)]
            printed = float(re.match(r"[\d.]+", cell).group()) / 100
            mean = ok[(ok.measure == column) & (ok.cell == label)].value.mean()
            if abs(printed - mean) > 0.0005 + 1e-12:
                problems.append(f"summary table {label} {column}: {cell} != {100 * mean:.1f}")
    per_seed = pd.read_csv(folder / "comparisons" / "comparisons.csv")
    for pair in study.compare:
        a, b = (study.label(study.select(pair[side])[0]) for side in ("a", "b"))
        for _, row in per_seed[per_seed.comparison == pair["name"]].iterrows():
            for side, cell in (("a", a), ("b", b)):
                value = facts[(facts.measure == row["metric"]) & (facts.cell == cell) & (facts.seed == row["seed"])]
                if len(value) != 1 or abs(value.value.iloc[0] - row[side]) > 1e-12:
                    problems.append(f"comparisons {pair['name']} {row['metric']} seed {row['seed']} {side}: "
                                    f"{row[side]} != {value.value.tolist()}")
    return problems


@pytest.fixture
def built(tmp_path):
    study = study_with(PAIR, seeds=(0, 1, 2))
    write_runs(tmp_path, study, VALUES)
    for analysis in ("summary", "comparisons"):
        run_analysis(study, analysis, results=tmp_path)
    folder = tmp_path / "studies" / "s"
    return study, folder, pd.read_csv(folder / "summary" / "facts.csv")


def test_the_facts_table_holds_every_measure_of_every_run_with_its_definition(built):
    study, _, facts = built
    assert len(facts) == len(MEASURES) * len(study.runs)
    row = facts[(facts.measure == "best_val_acc")].iloc[0]
    assert row["name"] == name("best_val_acc") and "eval_size" in row["definition"]
    test = facts[(facts.measure == "final_test_acc") & (facts.seed == 1)].set_index("cell").value
    assert test.to_dict() == {"bn=none": pytest.approx(0.874), "bn=hidden": pytest.approx(0.925)}


def test_every_number_stated_for_a_measure_is_the_facts_tables(built):
    study, folder, facts = built
    assert inconsistencies(facts, folder, study) == []
    # and a fact the report did not state (one run's test accuracy changed) is found
    changed = facts.copy()
    hit = (changed.measure == "final_test_acc") & (changed.cell == "bn=hidden") & (changed.seed == 2)
    changed.loc[hit, "value"] = 0.5
    found = inconsistencies(changed, folder, study)
    assert any("summary.csv bn=hidden final_test_acc" in p for p in found)
    assert any("comparisons BN against none final_test_acc seed 2 a" in p for p in found)
