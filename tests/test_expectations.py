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
    evaluation]} (steps 0, 10, 20, ..., one per epoch).
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
        # by default a curve that rose and levelled off: finished training (evidence.still_training)
        for i, v in enumerate((curve or {}).get(key, [0.1, a or 0.1, a or 0.1, a or 0.1])):
            curves.append({"label": study.label(r), "seed": r.seed, "split": "val", "step": 10 * i, "epoch": float(i),
                           "acc": v, "train_seconds": float(i), "status": st})
    pd.DataFrame(runs).to_csv(out / "runs.csv", index=False)
    pd.DataFrame(curves).to_parquet(out / "curves.parquet", index=False)


def verdicts(tmp_path, study):
    frag = run_analysis(study, "expectations", results=tmp_path)
    return [i["verdict"] for i in frag["stats"]["expectations"]["items"]], frag


HIGHER = {"claim": "BN is better", "source": SRC, "test": "higher", "metric": "final_test_acc",
          "a": {"bn": "hidden"}, "b": {"bn": "none"}}


def test_higher_confirmed_contradicted_and_inconclusive_with_three_seeds(tmp_path):
    study = plan_with([HIGHER], seeds=(0, 1, 2))
    for name, acc, expected in [
        ("up", {("hidden", 0): .90, ("hidden", 1): .91, ("hidden", 2): .905,
                ("none", 0): .85, ("none", 1): .86, ("none", 2): .85}, ev.CONFIRMED),
        ("down", {("hidden", 0): .80, ("hidden", 1): .81, ("hidden", 2): .80,
                  ("none", 0): .85, ("none", 1): .86, ("none", 2): .855}, ev.CONTRADICTED),
        ("mixed", {("hidden", 0): .90, ("hidden", 1): .82, ("hidden", 2): .86,
                   ("none", 0): .85, ("none", 1): .86, ("none", 2): .85}, ev.INCONCLUSIVE),
    ]:
        write_summary(tmp_path / name, study, acc)
        got, frag = verdicts(tmp_path / name, study)
        assert got == [expected], name
    item = frag["stats"]["expectations"]["items"][0]
    # differences +5, -4, +1 points: mean +0.67, t(2) = 4.30, sd 4.51 -> 95% interval [-10.5, +11.9]
    assert "3 seeds, mean difference +0.7 points, 95% interval [-10.5 points, +11.9 points] includes 0" \
        in item["reason"]
    assert "more than 100 paired seeds at this spread would be needed" in item["reason"]
    assert "a = bn=hidden: 86.0% (3 seeds)" in item["observed"]
    assert frag["stats"]["expectations"]["counts"] == {"confirmed": 0, "contradicted": 0, "inconclusive": 1}


def test_the_same_effect_is_inconclusive_with_two_seeds_and_decided_with_five(tmp_path):
    # BN 2 points higher, give or take half a point, in every seed
    effect = [.020, .025, .015, .022, .018]
    for seeds, expected in [((0, 1), ev.INCONCLUSIVE), ((0, 1, 2, 3, 4), ev.CONFIRMED)]:
        study = plan_with([HIGHER], seeds=seeds)
        acc = {("none", s): .85 for s in seeds} | {("hidden", s): .85 + effect[s] for s in seeds}
        write_summary(tmp_path / str(len(seeds)), study, acc)
        got, frag = verdicts(tmp_path / str(len(seeds)), study)
        assert got == [expected], seeds
    reasons = [json_item["reason"] for json_item in
               ev_items(tmp_path / "2")]
    assert reasons[0].startswith("2 seeds, differences +2.0 points and +2.5 points: they agree in sign; "
                                 "no verdict from fewer than 3 paired seeds (about 3 paired seeds at this spread "
                                 "would decide it)")


def ev_items(root):
    import json
    return json.loads((root / "studies" / "s" / "expectations" / "expectations.json").read_text())["items"]


def test_one_seed_never_decides_however_large_the_gap(tmp_path):
    study = plan_with([HIGHER], seeds=(0,))
    for name, acc in [("small", {("hidden", 0): .87, ("none", 0): .86}),
                      ("large", {("hidden", 0): .90, ("none", 0): .60}),
                      ("wrong", {("hidden", 0): .60, ("none", 0): .90})]:
        write_summary(tmp_path / name, study, acc)
        got, frag = verdicts(tmp_path / name, study)
        assert got == [ev.INCONCLUSIVE], name
    reason = frag["stats"]["expectations"]["items"][0]["reason"]
    assert reason == ("one seed, difference -30.0 points; no verdict from fewer than 3 paired seeds "
                      "(at least 3 paired seeds would show its spread); this study runs 1 seed per cell: give it 3 "
                      "or more to decide it")


def test_a_claim_the_scale_cannot_decide_names_the_scale_that_can():
    from types import SimpleNamespace
    quick = SimpleNamespace(seeds=[0, 1], scale="quick", seeds_at_scales={"quick": 2, "seed": 3})
    assert ev.where_decided(quick) == "the quick scale runs 2 seeds per cell; the seed scale (3 seeds) decides it"
    nowhere = SimpleNamespace(seeds=[0], scale="quick", seeds_at_scales={"quick": 1, "seed": 2})
    assert ev.where_decided(nowhere) == ("no scale of this study runs 3 seeds per cell (here 1): undecided as "
                                         "configured")
    assert ev.where_decided(SimpleNamespace(seeds=[0, 1, 2], scale="seed", seeds_at_scales={"seed": 3})) == ""
    # every library study whose claims pair cells can decide them at some scale
    from bnlab.config import build_plan, load_config
    for name, study in build_plan(load_config("config/full.yaml")).studies.items():
        paired = [e for e in study.expect if e["test"] in ("higher", "lower", "similar", "faster")]
        if paired or study.compare:
            assert len(study.seeds) >= ev.MIN_SEEDS, name


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
    seeds = (0, 1, 2)
    study = plan_with([faster], seeds=seeds)
    acc = {(bn, s): .8 for bn in ("none", "hidden") for s in seeds}
    quick = [0.1, 0.8, 0.85, 0.86]  # reaches 0.8 at step 10
    slow = [0.1, 0.5, 0.7, 0.8]  # its best, 0.8, at step 30
    write_summary(tmp_path / "bn", study, acc, curve={**{("hidden", s): quick for s in seeds},
                                                       **{("none", s): slow for s in seeds}})
    got, frag = verdicts(tmp_path / "bn", study)
    reason = frag["stats"]["expectations"]["items"][0]["reason"]
    assert got == [ev.CONFIRMED] and "speedup b/a: the same 3.00x in all 3 seeds: above 1x" in reason
    assert "interval" not in reason
    # the speedup tables' definition: geometric mean over seeds, interval of the log ratios (ratios 3, 3 and
    # 1.5: arithmetic mean 2.50x, geometric 2.38x)
    half = [0.1, 0.5, 0.8, 0.86]  # reaches 0.8 at step 20: 30 / 20 = 1.5x
    write_summary(tmp_path / "geo", study, acc, curve={("hidden", 0): quick, ("hidden", 1): quick,
                                                        ("hidden", 2): half, **{("none", s): slow for s in seeds}})
    got, frag = verdicts(tmp_path / "geo", study)
    reason = frag["stats"]["expectations"]["items"][0]["reason"]
    assert f"geometric mean {(3 * 3 * 1.5) ** (1 / 3):.2f}x" in reason and "2.50x" not in reason
    # one seed where BN never reaches the target: not confirmed, whatever the others say
    write_summary(tmp_path / "never", study, acc, curve={("hidden", 0): quick, ("hidden", 1): quick,
                                                          ("hidden", 2): [0.1, .2, .3, .4],
                                                          **{("none", s): slow for s in seeds}})
    got, frag = verdicts(tmp_path / "never", study)
    assert got == [ev.INCONCLUSIVE]
    assert "a never reached b's best in seed 2: no speedup there" in frag["stats"]["expectations"]["items"][0]["reason"]
    write_summary(tmp_path / "nobn", study, acc, curve={("hidden", 0): slow, ("hidden", 1): [0.1, .2, .3, .4],
                                                         ("hidden", 2): slow, **{("none", s): quick for s in seeds}})
    got, frag = verdicts(tmp_path / "nobn", study)
    assert got == [ev.CONTRADICTED]
    assert "a never reached" in frag["stats"]["expectations"]["items"][0]["observed"]


def test_similar_and_a_measure_of_another_analysis(tmp_path):
    similar = {"claim": "alike", "source": SRC, "test": "similar", "metric": "final_test_acc",
               "a": {"bn": "hidden", "lr": 1e-3}, "b": {"bn": "none", "lr": 1e-3}}
    band = {"claim": "BN narrows the band", "source": SRC, "test": "lower", "metric": "landscape.course_loss_band",
            "a": {"bn": "hidden"}, "b": {"bn": "none"}}
    seeds = (0, 1, 2)
    study = plan_with([similar, band], seeds=seeds, grid={"bn": ["none", "hidden"], "lr": [1e-3, 1e-4]})
    assert study.analyses.index("landscape") < study.analyses.index("expectations")
    acc = {(bn, s): .85 + .001 * s for bn in ("none", "hidden") for s in seeds}
    for name, widths, expected in [("narrow", (0.2, 0.5), ev.CONFIRMED), ("wide", (0.9, 0.5), ev.CONTRADICTED)]:
        root = tmp_path / name
        write_summary(root, study, acc)
        land = root / "studies" / "s" / "landscape"
        land.mkdir(parents=True)
        write_json(land / FRAGMENT, {"stats": {"measures": {"course_loss_band": [
            ev.measure({"bn": bn}, s, w + 0.01 * s) for s in seeds for bn, w in zip(("hidden", "none"), widths)]}}})
        got, frag = verdicts(root, study)
        assert got == [ev.CONFIRMED, expected], name
        # the measure spans both lrs: the observed text names the selector, not one cell's label
        assert frag["stats"]["expectations"]["items"][1]["observed"].startswith("a = bn=hidden (2 cells):")
    # a value over seeds (seed None) is one number per cell: no spread, no verdict, and said so
    root = tmp_path / "pooled"
    write_summary(root, study, acc)
    land = root / "studies" / "s" / "landscape"
    land.mkdir(parents=True)
    write_json(land / FRAGMENT, {"stats": {"measures": {"course_loss_band": [
        ev.measure({"bn": "hidden"}, None, 0.2), ev.measure({"bn": "none"}, None, 0.5)]}}})
    got, frag = verdicts(root, study)
    assert got == [ev.CONFIRMED, ev.INCONCLUSIVE]
    assert "one value per cell (over seeds)" in frag["stats"]["expectations"]["items"][1]["reason"]


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


def test_the_interval_is_the_paired_t_interval_and_needs_three_seeds():
    from scipy import stats
    d = [0.01, 0.02, 0.03, 0.04, 0.05]
    half = stats.t.ppf(0.975, 4) * pd.Series(d).std() / 5 ** 0.5
    assert ev.t_interval(d) == pytest.approx((0.03 - half, 0.03 + half))
    assert ev.t_interval([0.01, 0.05]) is None and ev.t_interval([0.02]) is None
    assert ev.t_interval([0.02, 0.02, 0.02]) == (0.02, 0.02)
    # seeds needed: the first n whose t half-width at the observed spread is below the gap
    assert ev.seeds_to_decide([0.01, 0.03], gap=0.02) == 5  # sd 0.0141: half-widths 0.0351 (n 3), 0.0225 (4), 0.0176 (5)
    assert ev.seeds_to_decide([0.01, 0.03], gap=0) is None and ev.seeds_to_decide([0.01], gap=0.02) is None


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


def test_a_verdict_is_withheld_while_a_run_is_still_training_and_given_once_it_is_flat(tmp_path):
    seeds = (0, 1, 2)
    study = plan_with([HIGHER], seeds=seeds)
    acc = {("none", s): .85 for s in seeds} | {("hidden", s): .90 + .002 * s for s in seeds}
    flat = {k: [0.1, v, v, v] for k, v in acc.items()}
    write_summary(tmp_path / "flat", study, acc, curve=flat)
    assert verdicts(tmp_path / "flat", study)[0] == [ev.CONFIRMED]
    # the same final numbers, but the no-BN run of seed 1 still rose 2 points per epoch at its end
    rising = {**flat, ("none", 1): [0.1, 0.81, 0.83, 0.85]}
    write_summary(tmp_path / "rising", study, acc, curve=rising)
    got, frag = verdicts(tmp_path / "rising", study)
    assert got == [ev.INCONCLUSIVE]
    reason = frag["stats"]["expectations"]["items"][0]["reason"]
    assert reason.startswith("still training: 1 run rose faster than 0.5 points per epoch over their last 3 "
                             "validation points (bn=none seed 1: +2.00 points/epoch at epoch 3), so their final "
                             "numbers are not those of finished models; on these numbers: confirmed (3 seeds")
    # a slower rise, under the rule's 0.5 points per epoch, counts as finished
    slow = {**flat, ("none", 1): [0.1, 0.846, 0.848, 0.85]}
    write_summary(tmp_path / "slow", study, acc, curve=slow)
    assert verdicts(tmp_path / "slow", study)[0] == [ev.CONFIRMED]


def test_a_gap_claim_on_dropout_runs_is_withheld_while_train_accuracy_has_dropout_on(tmp_path):
    gap = {"claim": "Dropout narrows the gap", "source": SRC, "test": "lower", "metric": "train_test_gap",
           "a": {"dropout_hidden": 0.5}, "b": {"dropout_hidden": 0}}
    seeds = (0, 1, 2)
    # write_summary gives train accuracy = test + 5 points; the dropout cell's test accuracy is lower,
    # so its gap equals the other's and differs only through train accuracy set below
    study = plan_with([gap], seeds=seeds, grid={"dropout_hidden": [0, 0.5]})
    out = tmp_path / "studies" / study.name / "summary"
    write_summary(tmp_path, study, {(r.bn, r.seed): .9 for r in study.runs})
    runs = pd.read_csv(out / "runs.csv")
    dropout = runs.run_dir.isin([r.relative_dir() for r in study.runs if r.dropout_hidden > 0])
    runs.loc[dropout, "final_train_acc"] = runs.loc[dropout, "final_test_acc"] - 0.02  # train below test
    runs.to_csv(out / "runs.csv", index=False)
    got, frag = verdicts(tmp_path, study)
    assert got == [ev.INCONCLUSIVE]
    reason = frag["stats"]["expectations"]["items"][0]["reason"]
    assert reason.startswith("not a finished model's gap: the train accuracy of dropout_hidden=0.5 is measured in "
                             "training mode, with dropout on") and "on these numbers: confirmed" in reason
    # the same claim between two cells without dropout (here: two lrs) is judged
    plain = {**gap, "claim": "A higher rate narrows the gap", "a": {"lr": 1e-2}, "b": {"lr": 1e-3}}
    study2 = plan_with([plain], seeds=seeds, grid={"lr": [1e-3, 1e-2]})
    write_summary(tmp_path / "plain", study2, {(r.bn, r.seed): .9 for r in study2.runs})
    out2 = tmp_path / "plain" / "studies" / study2.name / "summary"
    runs2 = pd.read_csv(out2 / "runs.csv")
    high = runs2.run_dir.isin([r.relative_dir() for r in study2.runs if r.lr == 1e-2])
    runs2.loc[high, "final_train_acc"] = runs2.loc[high, "final_test_acc"] - 0.02
    runs2.to_csv(out2 / "runs.csv", index=False)
    assert verdicts(tmp_path / "plain", study2)[0] == [ev.CONFIRMED]


def test_a_claim_about_a_fixed_budget_is_judged_on_runs_still_training_and_says_so(tmp_path):
    seeds = (0, 1, 2)
    budget = {**HIGHER, "claim": "BN is better in the same epochs", "budget": True}
    acc = {("none", s): .85 for s in seeds} | {("hidden", s): .90 + .002 * s for s in seeds}
    rising = {k: [0.1, v, v, v] for k, v in acc.items()} | {("none", 1): [0.1, 0.81, 0.83, 0.85]}
    for claim, expected in [(HIGHER, ev.INCONCLUSIVE), (budget, ev.CONFIRMED)]:
        study = plan_with([claim], seeds=seeds)
        root = tmp_path / str(claim.get("budget", False))
        write_summary(root, study, acc, curve=rising)
        got, frag = verdicts(root, study)
        assert got == [expected]
    assert frag["stats"]["expectations"]["items"][0]["reason"].endswith(
        "; a claim about a fixed budget, judged although 1 run rose faster than 0.5 points per epoch over their "
        "last 3 validation points (bn=none seed 1: +2.00 points/epoch at epoch 3)")


def test_the_claim_tests_the_plan_checks_are_the_schemas():
    """bnlab.claims sorts every test the schema allows into a pair test or a cell test, and no other."""
    from bnlab.claims import CELL_TESTS, PAIR_TESTS
    from bnlab.config import load_schema

    def find_test_enum(node):
        if isinstance(node, dict):
            if "chance" in (node.get("enum") or ()):
                return node["enum"]
            return next((e for e in map(find_test_enum, node.values()) if e), None)
        if isinstance(node, list):
            return next((e for e in map(find_test_enum, node) if e), None)
        return None

    allowed = find_test_enum(load_schema())
    assert sorted(PAIR_TESTS + CELL_TESTS) == sorted(allowed) and not set(PAIR_TESTS) & set(CELL_TESTS)


@pytest.mark.parametrize("ratios,verdict,words", [
    ([2.0, 2.2, 2.1], ev.CONFIRMED, "3 seeds, geometric mean 2.10x, 95% interval ["),
    ([0.5, 0.6, 0.55], ev.CONTRADICTED, ": below 1x"),
    ([0.8, 1.3, 1.1], ev.INCONCLUSIVE, "95% interval [0.57x, 1.93x] includes 1x;"),
    ([2.0, 2.0, 2.0], ev.CONFIRMED, "the same 2.00x in all 3 seeds: above 1x"),
    ([2.0, 4.0], ev.INCONCLUSIVE, "2 seeds, 2.00x and 4.00x: all above 1x; no verdict from fewer than 3"),
    ([0.5, 4.0], ev.INCONCLUSIVE, "2 seeds, 0.50x and 4.00x: on both sides of 1x"),
])
def test_a_ratio_is_judged_on_the_log_scale_each_way(ratios, verdict, words):
    got, reason = ev.judge_ratio(ratios, above=1.0)
    assert got == verdict and words in reason, reason
