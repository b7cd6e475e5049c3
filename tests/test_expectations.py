"""Expectations: claims in a study's config checked against its runs, each verdict able to come out every way."""

import pandas as pd
import pytest

from bnlab.analyses import evidence as ev
from bnlab.analyses.registry import FRAGMENT
from bnlab.analyses.runner import resolve_study_analyses, run_analysis
from bnlab.config import ConfigError, build_plan
from bnlab.runfolder import write_json

SRC = "Test et al. 2000"


def plan_with(expect, seeds=(0, 1), grid=None, analyses=()):
    cfg = {"data": {"val_size": 300},
           "defaults": {"dataset": "digits", "model": "mlp", "widths": [16], "epochs": 1, "batch_size": 64},
           "studies": {"s": {"title": "t", "question": "q", "grid": grid or {"bn": ["none", "hidden"]},
                             "seeds": list(seeds), "expect": expect, "analyses": list(analyses)}}}
    return resolve_study_analyses(build_plan(cfg).studies["s"])


def write_summary(tmp_path, study, acc, status=None, curve=None):
    """runs.csv and curves.parquet as the summary analysis writes them.

    acc: {(bn, seed): best/final accuracy}; status: {(bn, seed): "diverged"}; curve: {(bn, seed): [val acc per
    evaluation]} (steps 0, 10, 20, ...).
    """
    out = tmp_path / "studies" / study.name / "summary"
    out.mkdir(parents=True)
    runs, curves = [], []
    for r in study.runs:
        key = (r.bn, r.seed)
        st = (status or {}).get(key, "ok")
        a = acc[key] if st == "ok" else None
        runs.append({"label": study.label(r), "seed": r.seed, "bn": r.bn, "status": st,
                     "diverged_step": 30 if st != "ok" else None, "best_val_acc": a, "final_test_acc": a,
                     "final_train_acc": None if a is None else min(1.0, a + 0.05), "run_dir": r.relative_dir()})
        for i, v in enumerate((curve or {}).get(key, [0.1, a or 0.1])):
            curves.append({"label": study.label(r), "seed": r.seed, "split": "val", "step": 10 * i, "acc": v,
                           "train_seconds": float(i), "status": st})
    pd.DataFrame(runs).to_csv(out / "runs.csv", index=False)
    pd.DataFrame(curves).to_parquet(out / "curves.parquet", index=False)


def verdicts(tmp_path, study):
    frag = run_analysis(study, "expectations", results=tmp_path)
    return [i["verdict"] for i in frag["stats"]["expectations"]["items"]], frag


HIGHER = {"claim": "BN is better", "source": SRC, "test": "higher", "metric": "final_test_acc",
          "a": {"bn": "hidden"}, "b": {"bn": "none"}}


def test_higher_confirmed_contradicted_and_inconclusive_with_two_seeds(tmp_path):
    study = plan_with([HIGHER])
    for name, acc, expected in [
        ("up", {("hidden", 0): .90, ("hidden", 1): .91, ("none", 0): .85, ("none", 1): .86}, ev.CONFIRMED),
        ("down", {("hidden", 0): .80, ("hidden", 1): .81, ("none", 0): .85, ("none", 1): .86}, ev.CONTRADICTED),
        ("mixed", {("hidden", 0): .90, ("hidden", 1): .82, ("none", 0): .85, ("none", 1): .86}, ev.INCONCLUSIVE),
    ]:
        write_summary(tmp_path / name, study, acc)
        got, frag = verdicts(tmp_path / name, study)
        assert got == [expected], name
    item = frag["stats"]["expectations"]["items"][0]
    assert "95% interval [-4.0 points, +5.0 points] includes 0" in item["reason"]
    assert "a = bn=hidden: 86.0% (2 seeds)" in item["observed"]
    assert frag["stats"]["expectations"]["counts"] == {"confirmed": 0, "contradicted": 0, "inconclusive": 1}


def test_one_seed_decides_only_a_large_gap(tmp_path):
    study = plan_with([HIGHER], seeds=(0,))
    write_summary(tmp_path / "small", study, {("hidden", 0): .87, ("none", 0): .86})
    got, frag = verdicts(tmp_path / "small", study)
    assert got == [ev.INCONCLUSIVE]
    assert "one seed: no spread to judge a difference of +1.0 points by" in frag["stats"]["expectations"]["items"][0]["reason"]
    write_summary(tmp_path / "large", study, {("hidden", 0): .90, ("none", 0): .80})
    assert verdicts(tmp_path / "large", study)[0] == [ev.CONFIRMED]
    write_summary(tmp_path / "wrong", study, {("hidden", 0): .70, ("none", 0): .80})
    assert verdicts(tmp_path / "wrong", study)[0] == [ev.CONTRADICTED]


def test_chance_level_and_divergence(tmp_path):
    chance = {"claim": "zero init stays at chance", "source": SRC, "test": "chance", "cells": [{"bn": "none"}]}
    above = {"claim": "BN trains", "source": SRC, "test": "above_chance", "cells": [{"bn": "hidden"}]}
    diverges = {"claim": "no BN diverges", "source": SRC, "test": "diverges", "cells": [{"bn": "none"}]}
    study = plan_with([chance, above, diverges])
    write_summary(tmp_path / "a", study, {("none", 0): .11, ("none", 1): .12, ("hidden", 0): .8, ("hidden", 1): .8})
    assert verdicts(tmp_path / "a", study)[0] == [ev.CONFIRMED, ev.CONFIRMED, ev.CONTRADICTED]
    write_summary(tmp_path / "b", study, {("none", 0): .11, ("none", 1): .60, ("hidden", 0): .1, ("hidden", 1): .1})
    assert verdicts(tmp_path / "b", study)[0] == [ev.INCONCLUSIVE, ev.CONTRADICTED, ev.CONTRADICTED]
    write_summary(tmp_path / "c", study, {("none", 0): 0, ("none", 1): 0, ("hidden", 0): .8, ("hidden", 1): .8},
                  status={("none", 0): "diverged", ("none", 1): "diverged"})
    got, frag = verdicts(tmp_path / "c", study)
    assert got == [ev.INCONCLUSIVE, ev.CONFIRMED, ev.CONFIRMED]
    assert "2/2 runs diverged" in frag["stats"]["expectations"]["items"][0]["reason"]


def test_faster_uses_first_step_at_the_baselines_best(tmp_path):
    faster = {"claim": "BN reaches the baseline in fewer steps", "source": SRC, "test": "faster",
              "a": {"bn": "hidden"}, "b": {"bn": "none"}}
    study = plan_with([faster])
    acc = {k: .8 for k in [("none", 0), ("none", 1), ("hidden", 0), ("hidden", 1)]}
    quick = [0.1, 0.8, 0.85, 0.86]  # reaches 0.8 at step 10
    slow = [0.1, 0.5, 0.7, 0.8]  # its best, 0.8, at step 30
    write_summary(tmp_path / "bn", study, acc, curve={("hidden", 0): quick, ("hidden", 1): quick,
                                                       ("none", 0): slow, ("none", 1): slow})
    got, frag = verdicts(tmp_path / "bn", study)
    assert got == [ev.CONFIRMED] and "speedup b/a 3.00x" in frag["stats"]["expectations"]["items"][0]["reason"]
    write_summary(tmp_path / "nobn", study, acc, curve={("hidden", 0): slow, ("hidden", 1): [0.1, .2, .3, .4],
                                                         ("none", 0): quick, ("none", 1): quick})
    got, frag = verdicts(tmp_path / "nobn", study)
    assert got == [ev.CONTRADICTED]
    assert "a never reached" in frag["stats"]["expectations"]["items"][0]["observed"]


def test_similar_and_a_measure_of_another_analysis(tmp_path):
    similar = {"claim": "alike", "source": SRC, "test": "similar", "metric": "final_test_acc",
               "a": {"bn": "hidden", "lr": 1e-3}, "b": {"bn": "none", "lr": 1e-3}}
    band = {"claim": "BN narrows the band", "source": SRC, "test": "lower", "metric": "landscape.course_loss_band",
            "a": {"bn": "hidden"}, "b": {"bn": "none"}}
    study = plan_with([similar, band], grid={"bn": ["none", "hidden"], "lr": [1e-3, 1e-4]})
    assert study.analyses.index("landscape") < study.analyses.index("expectations")
    acc = {(bn, s): .85 + .001 * s for bn in ("none", "hidden") for s in (0, 1)}
    for name, widths, expected in [("narrow", (0.2, 0.5), ev.CONFIRMED), ("wide", (0.9, 0.5), ev.CONTRADICTED)]:
        root = tmp_path / name
        write_summary(root, study, acc)
        land = root / "studies" / "s" / "landscape"
        land.mkdir(parents=True)
        write_json(land / FRAGMENT, {"stats": {"measures": {"course_loss_band": [
            ev.measure({"bn": "hidden"}, None, widths[0]), ev.measure({"bn": "none"}, None, widths[1])]}}})
        got, frag = verdicts(root, study)
        assert got == [ev.CONFIRMED, expected], name
        reason = frag["stats"]["expectations"]["items"][1]["reason"]
        assert "one value per cell (over seeds)" in reason
        # the measure spans both lrs: the observed text names the selector, not one cell's label
        assert frag["stats"]["expectations"]["items"][1]["observed"].startswith("a = bn=hidden (2 cells):")


def test_a_measure_the_analysis_does_not_publish_is_an_error_naming_it(tmp_path):
    band = {"claim": "x", "source": SRC, "test": "lower", "metric": "landscape.no_such_thing",
            "a": {"bn": "hidden"}, "b": {"bn": "none"}}
    study = plan_with([band], grid={"bn": ["none", "hidden"], "lr": [1e-3, 1e-4]})
    write_summary(tmp_path, study, {(bn, s): .8 for bn in ("none", "hidden") for s in (0, 1)})
    land = tmp_path / "studies" / "s" / "landscape"
    land.mkdir(parents=True)
    write_json(land / FRAGMENT, {"stats": {"measures": {"course_loss_band": []}}})
    with pytest.raises(ValueError, match="publishes no measure 'no_such_thing'; its measures: course_loss_band"):
        run_analysis(study, "expectations", results=tmp_path)


@pytest.mark.parametrize("entry, where, message", [
    ({"test": "higher", "a": {"bn": "hidden"}}, "studies.s.expect[0]", "give 'b'"),
    ({"test": "higher", "a": {"bn": "hidden"}, "b": {"lr": 1e-3}}, "studies.s.expect[0].b", "matches 2 cells"),
    ({"test": "higher", "a": {"bn": "batch"}, "b": {"bn": "none"}}, "studies.s.expect[0].a.bn", "batch"),
    ({"test": "chance", "cells": [{"widths": [99]}]}, "studies.s.expect[0].cells[0]", "matches no run"),
    ({"test": "chance", "a": {"bn": "none"}}, "studies.s.expect[0].a", "is about `cells`"),
    ({"test": "below", "cells": []}, "studies.s.expect[0]", "needs a 'value'"),
    ({"test": "higher", "a": {"bn": "hidden"}, "b": {"bn": "none"}, "metric": "best_acc"},
     "studies.s.expect[0].metric", "unknown metric 'best_acc'"),
    ({"test": "higher", "a": {"bn": "hidden"}, "b": {"bn": "none"}, "metric": "nosuch.x"},
     "studies.s.expect[0].metric", "names analysis 'nosuch'"),
    ({"test": "sooner"}, "studies.s.expect[0].test", "allowed: chance"),
])
def test_config_errors_name_the_field(entry, where, message):
    with pytest.raises(ConfigError) as err:
        plan_with([{"claim": "c", "source": SRC, **entry}])
    assert f"'{where}'" in str(err.value) and message in str(err.value)


def test_two_seed_interval_is_the_range_of_the_differences():
    assert ev.bootstrap_interval([0.01, 0.05]) == pytest.approx((0.01, 0.05))
    lo, hi = ev.bootstrap_interval([0.01, 0.02, 0.03, 0.04, 0.05])
    assert 0.01 < lo < 0.03 < hi < 0.05
    assert ev.bootstrap_interval([0.02]) is None


def test_below_and_above_a_value_either_way(tmp_path):
    below = {"claim": "small", "source": SRC, "test": "below", "metric": "final_test_acc", "value": "5e-1",
             "cells": [{"bn": "none"}]}
    above = {**below, "claim": "large", "test": "above"}
    study = plan_with([below, above])
    assert study.expect[0]["value"] == 0.5  # YAML's "5e-1" is read as the number
    write_summary(tmp_path / "low", study, {("none", 0): .11, ("none", 1): .12, ("hidden", 0): .8, ("hidden", 1): .8})
    assert verdicts(tmp_path / "low", study)[0] == [ev.CONFIRMED, ev.CONTRADICTED]
    write_summary(tmp_path / "high", study, {("none", 0): .81, ("none", 1): .82, ("hidden", 0): .8, ("hidden", 1): .8})
    got, frag = verdicts(tmp_path / "high", study)
    assert got == [ev.CONTRADICTED, ev.CONFIRMED]
    assert frag["stats"]["expectations"]["items"][0]["reason"] == "at or above 50.0% in 2/2 runs"
