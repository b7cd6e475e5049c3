"""One number, one definition: each measure of a run has one name, and what the summary and the declared
comparisons state for it is the study's facts table (the summary's facts.csv) or its mean."""

import pandas as pd
import pytest

from bnlab.analyses import resolve_study_analyses, run_analysis
from bnlab.analyses.consistency import check_study, check_summary
from bnlab.analyses.consistency import main as consistency_main
from bnlab.analyses.measures import MEASURES, name
from bnlab.analyses.summary import SUMMARY_METRICS
from bnlab.config import build_plan
from bnlab.runfolder import read_json
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


EXPECT = [{"claim": "BN raises test accuracy", "source": "Ioffe & Szegedy 2015", "test": "higher",
           "metric": "final_test_acc", "a": {"bn": "hidden"}, "b": {"bn": "none"}},
          {"claim": "Without BN the gap stays under 10 points", "source": "a seed", "test": "below",
           "metric": "train_test_gap", "value": 0.1, "cells": [{"bn": "none"}]}]


def with_expectations(study):
    """The comparison study with two expectations: a paired one and one on a derived measure of one cell."""
    cfg = {"data": {"val_size": 300},
           "defaults": {"dataset": "digits", "model": "mlp", "widths": [16], "epochs": 1, "batch_size": 64},
           "studies": {"s": {"title": "t", "question": "q", "grid": {"bn": ["none", "hidden"]},
                             "seeds": list(study.seeds), "compare": PAIR, "expect": EXPECT}}}
    return resolve_study_analyses(build_plan(cfg).studies["s"])


@pytest.fixture
def built(tmp_path):
    study = with_expectations(study_with(PAIR, seeds=(0, 1, 2)))
    write_runs(tmp_path, study, VALUES)
    for analysis in ("summary", "comparisons", "expectations"):
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
    checked, problems = check_study(folder)
    assert problems == []
    # summary means of 2 cells (the fake runs have no final_val_loss) and their 3 printed accuracies;
    # 4 compared metrics x 3 seeds x 2 sides and their 2 means; the pair expectation's 2 x 3 seeds, the gap's 3
    assert checked == ((len(SUMMARY_METRICS) - 1) * 2 + 3 * 2) + (4 * 3 * 2 + 4 * 2) + (3 * 2 + 3)


def test_a_fact_no_analysis_stated_is_found(built):
    """One run's test accuracy changed in the facts: the summary, the comparison (per seed and its mean) and
    the expectation that stated it each disagree, and the gap of a run of the other cell is untouched."""
    study, folder, facts = built
    hit = (facts.measure == "final_test_acc") & (facts.cell == "bn=hidden") & (facts.seed == 2)
    facts.loc[hit, "value"] = 0.5
    facts.to_csv(folder / "summary" / "facts.csv", index=False)
    _, found = check_study(folder)
    assert any(p.startswith("summary.csv bn=hidden final_test_acc") for p in found)
    assert any(p.startswith("summary table bn=hidden final_test_acc") for p in found)
    assert any(p.startswith("comparisons BN against none final_test_acc seed 2 a") for p in found)
    assert any(p.startswith("comparisons BN against none final_test_acc mean a") for p in found)
    assert any(p.startswith("expectation 'BN raises test accuracy' final_test_acc seed 2") for p in found)
    assert not any("gap stays" in p for p in found)
    # a run of the cell the gap expectation states: found there too
    hit = (facts.measure == "final_train_acc") & (facts.cell == "bn=none") & (facts.seed == 0)
    facts.loc[hit, "value"] = 0.1
    facts.to_csv(folder / "summary" / "facts.csv", index=False)
    _, found = check_study(folder)
    assert any(p.startswith("expectation 'Without BN the gap stays under 10 points' train_test_gap seed 0")
               for p in found)


def test_the_check_runs_over_a_results_folder(built, capsys):
    study, folder, facts = built
    assert consistency_main(["--results", str(folder.parent.parent)]) == 0
    assert "1 studies: " in capsys.readouterr().out
    facts.loc[0, "value"] = 7.0
    facts.to_csv(folder / "summary" / "facts.csv", index=False)
    assert consistency_main(["--results", str(folder.parent.parent)]) == 1


def test_a_split_cell_is_checked_run_by_run(tmp_path):
    """A cell whose seeds split prints each run's value, not a mean: each is checked against the facts, and a
    changed run of it is found."""
    study = with_expectations(study_with(PAIR, seeds=(0, 1, 2)))
    stuck = {**VALUES, ("none", 0): (0.11, 0.09, 2.3, 2.3)}  # digits: at chance below 1/10 + 5 points
    write_runs(tmp_path, study, stuck)
    run_analysis(study, "summary", results=tmp_path)
    folder = tmp_path / "studies" / "s"
    row = next(r for r in read_json(folder / "summary" / "fragment.json")["tables"][0]["rows"]
               if r["cells"][0] == "bn=none")
    assert "87.4, 86.9; 9.0 (ended at chance)" in row["cells"]
    checked, problems = check_summary(pd.read_csv(folder / "summary" / "facts.csv"), folder)
    assert problems == []
    facts = pd.read_csv(folder / "summary" / "facts.csv")
    hit = (facts.measure == "final_test_acc") & (facts.cell == "bn=none") & (facts.seed == 2)
    facts.loc[hit, "value"] = 0.5
    again, found = check_summary(facts, folder)
    assert again == checked and found == [
        "summary.csv bn=none final_test_acc: 0.611 != 0.488",
        "summary table bn=none final_test_acc: 87.4, 86.9; 9.0 (ended at chance) != the runs' 9.0, 50.0, 87.4"]
