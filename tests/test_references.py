"""Published numbers beside ours: bands, the published setup and the verdicts (summary's references table and stats);
the summary table's train/test columns; test curves in the learning-curve figure."""

import pandas as pd
import pytest

from bnlab.analyses.learning_curves import dashed_test_note
from bnlab.analyses.summary import (
    SUMMARY_HEADER,
    reference_rows,
    reference_verdict,
    references_findings,
    references_tables,
    summarize,
    summary_table,
)
from bnlab.config import ConfigError, build_plan


def plan_with(references):
    cfg = {"data": {"val_size": 300},
           "defaults": {"dataset": "digits", "model": "mlp", "widths": [16], "epochs": 1, "batch_size": 64},
           "studies": {"s": {"title": "t", "question": "q", "grid": {"bn": ["none", "hidden"]}, "seeds": [0, 1],
                             "references": references}}}
    return build_plan(cfg).studies["s"]


def fake_runs(study, acc):
    """A run table as summary writes it: final_test_acc by (bn, seed), train_seconds 2.0."""
    return pd.DataFrame([{"label": study.label(r), "seed": r.seed, "bn": r.bn, "status": "ok",
                          "final_test_acc": acc[(r.bn, r.seed)], "train_seconds": 2.0,
                          "run_dir": r.relative_dir()} for r in study.runs])


ACC = {("none", 0): 0.90, ("none", 1): 0.92, ("hidden", 0): 0.95, ("hidden", 1): 0.97}
REFS = [
    {"what": "inside", "published": "91%", "source": "Paper A 2020", "match": {"bn": "none"},
     "band": [0.90, 0.93], "band_reason": "r", "setup": {"dataset": "digits"}},
    {"what": "outside", "published": "99%", "source": "Paper B 2021", "match": {"bn": "hidden"},
     "band": [0.98, 1.0], "band_reason": "r", "setup": {"dataset": "digits"}},
    {"what": "context", "published": "50%", "source": "Seed 001, section 5", "match": {"bn": "hidden"},
     "band": [0.4, 0.6], "band_reason": "r", "differs": "the seed trains on CIFAR-10"},
    {"what": "time", "published": "576 ms", "source": "Seed 002, table 1", "match": {"bn": "none"},
     "metric": "train_seconds", "differs": "the seed does not say what it timed"},
]


def test_verdicts_inside_outside_and_not_scored():
    study = plan_with(REFS)
    verdicts = [item["verdict"] for item in reference_rows(study, fake_runs(study, ACC))]
    inside, outside, context, time = verdicts
    assert inside["verdict"] == "inside" and inside["ours"] == pytest.approx(0.91) and inside["band"] == [0.9, 0.93]
    assert inside["reason"] == "ours 91.00% is inside the band 90.00% to 93.00%"
    assert outside["verdict"] == "outside" and outside["ours"] == pytest.approx(0.96)
    # a miss says by how much
    assert outside["reason"] == "ours 96.00% is 2.00 points below the band 98.00% to 100.00%"
    # a band alone does not score where the setup differs at every scale
    assert context["verdict"] == "not scored" and context["reason"] == "the seed trains on CIFAR-10"
    assert context["why_not_scored"] == "different" and context["ours"] == pytest.approx(0.96)
    assert time["verdict"] == "not scored" and time["ours"] == pytest.approx(2.0) and time["band"] is None
    assert set(inside) >= {"what", "verdict", "ours", "band", "reason"}


def test_a_different_run_table_flips_the_verdict():
    study = plan_with(REFS[:1])
    low = {**ACC, ("none", 0): 0.80, ("none", 1): 0.82}
    assert reference_rows(study, fake_runs(study, ACC))[0]["verdict"]["verdict"] == "inside"
    verdict = reference_rows(study, fake_runs(study, low))[0]["verdict"]
    assert verdict["verdict"] == "outside" and verdict["reason"].startswith("ours 81.00% is 9.00 points below")


def test_the_published_setup_decides_whether_a_number_is_scored():
    """The same band scores on the published dataset and is not compared on another; a study's
    seed_setting is its references' default setup."""
    scored = plan_with([{**REFS[0], "setup": {"dataset": "digits", "epochs": 1}}])
    item = reference_rows(scored, fake_runs(scored, ACC))[0]
    assert item["verdict"]["verdict"] == "inside"
    other = plan_with([{**REFS[0], "setup": {"dataset": "mnist", "epochs": 5}}])
    verdict = reference_rows(other, fake_runs(other, ACC))[0]["verdict"]
    assert verdict["verdict"] == "not scored" and verdict["why_not_scored"] == "setting"
    assert verdict["reason"] == ("our setting here is not the published one: scikit-learn digits (8x8) "
                                 "(published: MNIST); 1 epoch (published: 5 epochs)")
    ref = {k: v for k, v in REFS[0].items() if k != "setup"}
    cfg = {"data": {"val_size": 300},
           "defaults": {"dataset": "digits", "model": "mlp", "widths": [16], "epochs": 1, "batch_size": 64},
           "studies": {"s": {"title": "t", "question": "q", "grid": {"bn": ["none", "hidden"]}, "seeds": [0, 1],
                             "seed_setting": {"epochs": 3}, "references": [ref]}}}
    study = build_plan(cfg).studies["s"]
    assert study.references[0]["setup"] == {"epochs": "3"}
    assert reference_rows(study, fake_runs(study, ACC))[0]["verdict"]["why_not_scored"] == "setting"
    with pytest.raises(ConfigError, match="a band is scored only against the published setup"):
        plan_with([ref])


def test_the_median_over_seeds_scores_so_one_failed_seed_does_not_decide():
    study = plan_with(REFS[:1])
    runs = fake_runs(study, {**ACC, ("none", 0): 0.10})  # seed 0 stuck at chance, seed 1 at 92%
    verdict = reference_rows(study, runs)[0]["verdict"]
    assert verdict["ours"] == pytest.approx(0.51)  # the median of two is their mean
    three = plan_with(REFS[:1])
    three_runs = pd.concat([fake_runs(three, ACC), fake_runs(three, ACC).iloc[:1].assign(seed=2, final_test_acc=0.1,
                                                                                        run_dir="x")])
    three_runs.loc[three_runs.index[-1], "run_dir"] = "extra"
    assert reference_rows(three, fake_runs(three, ACC))[0]["verdict"]["ours"] == pytest.approx(0.91)


def test_seeds_split_between_trained_and_chance_are_said_beside_the_median():
    ref = {"what": "CNN, BN, lr 0.5", "published": 0.9754, "source": "Seed 002", "band": [0.96, 0.99]}
    split = reference_verdict(ref, [0.9705, 0.1135, 0.1135], [], chance=0.15)
    assert split["verdict"] == "outside" and split["ours"] == pytest.approx(0.1135)
    assert split["reason"].endswith("; the seeds split: 1 of 3 trained (97.05%; 1 inside the band), "
                                    "2 ended at chance")
    # every seed trained: no split to report
    assert "split" not in reference_verdict(ref, [0.9705, 0.97, 0.975], [], chance=0.15)["reason"]


def test_not_scored_without_band_without_runs_and_with_a_difference():
    ref = {"what": "w", "published": "p", "source": "s", "metric": "final_test_acc"}
    assert reference_verdict(ref, [0.5], [])["reason"] == "no band is given for the published number"
    assert reference_verdict({**ref, "band": [0, 1]}, [], [])["reason"] == "no finished matching run"
    gap = reference_verdict({**ref, "band": [0, 1]}, [0.5], ["3 epochs (published: 5 epochs)"])
    assert gap["verdict"] == "not scored" and "3 epochs (published: 5 epochs)" in gap["reason"]
    missed = reference_verdict({**ref, "band": [0.9, 1], "caveat": "no batch size stated"}, [0.5], [])
    assert missed["reason"] == "ours 50.00% is 40.00 points below the band 90.00% to 100.00%"
    assert missed["caveat"] == "no batch size stated"  # said beside a miss (a note where rows share it)
    assert reference_verdict({**ref, "band": [0.4, 1], "caveat": "x"}, [0.5], [])["caveat"] == ""
    with pytest.raises(ValueError, match="low end above its high end"):
        reference_verdict({**ref, "band": [0.9, 0.1]}, [0.5], [])


def test_references_tables_part_scored_from_context_and_share_repeated_reasons():
    refs = REFS + [{**REFS[2], "what": "context 2"}]
    study = plan_with(refs)
    scored, context = references_tables(reference_rows(study, fake_runs(study, ACC)))
    assert scored["header"][-1] == "verdict" and context["header"][-1] == "why not scored"
    assert [row["cells"][0] for row in scored["rows"]] == ["inside", "outside"]
    cells = {row["cells"][0]: row["cells"] for row in scored["rows"] + context["rows"]}
    assert cells["inside"][3] == "91.00% (median of 2: 90.00, 92.00)"
    assert cells["inside"][-1].startswith("ours 91.00% is inside")
    assert cells["time"][3] == "2 s (median of 2: 2, 2)"
    assert cells["context"][-1] == cells["context 2"][-1] == "see note (a)"
    assert cells["time"][-1] == "the seed does not say what it timed"
    assert "(a) The seed trains on CIFAR-10." in context["notes"] and "(a) The seed trains on CIFAR-10." not in \
        scored["notes"]
    text = " ".join(references_findings([i["verdict"] for i in reference_rows(study, fake_runs(study, ACC))]))
    assert "1 reproduced (inside their band), 1 missed (outside), 3 not scored" in text
    assert "Band: R." in scored["notes"]
    assert "inside (Paper A 2020): ours 91.00% is inside the band" in text
    # nothing scored: only the context table
    only = plan_with([REFS[2]])
    (alone,) = references_tables(reference_rows(only, fake_runs(only, ACC)))
    assert alone["header"][-1] == "why not scored"


def test_schema_checks_band_units():
    with pytest.raises(ConfigError, match=r"references\[0\]\.band\[0\]': 91 is greater than the maximum of 1"):
        plan_with([{**REFS[0], "band": [91, 93]}])
    with pytest.raises(ConfigError, match=r"references\[0\]\.band'"):
        plan_with([{**REFS[0], "band": [0.9]}])
    seconds = plan_with([{**REFS[3], "band": [100, 900], "band_reason": "r"}])
    assert seconds.references[0]["band"] == [100, 900]
    assert plan_with(REFS[:1]).references[0]["differs"] == ""  # defaults filled
    with pytest.raises(ConfigError, match="'band_reason' is a dependency of 'band'"):
        plan_with([{**REFS[0], "band_reason": None} if False else {k: v for k, v in REFS[0].items()
                                                                    if k != "band_reason"}])


# ------------------------------------------------------------ the summary table
def test_summary_table_has_train_and_test_accuracy_and_loss():
    runs = pd.DataFrame([{"label": "bn=none", "bn": "none", "seed": s, "status": "ok", "best_val_acc": 0.9,
                          "final_train_acc": 0.95 + 0.01 * s, "final_test_acc": 0.89, "final_train_loss": 0.1,
                          "final_val_loss": 0.3, "final_test_loss": 0.31 + 0.02 * s, "train_seconds": 3.0}
                         for s in (0, 1)])
    tab = summary_table(summarize(runs, ["bn"]))
    assert tab["header"] == SUMMARY_HEADER == ["setting", "diverged/runs", "best val acc (subset) %", "train acc %",
                                               "test acc %", "train loss", "val loss", "test loss", "train s"]
    assert tab["rows"][0]["cells"] == ["bn=none", "0/2", "90.0\u00a0±\u00a00.0", "95.5\u00a0±\u00a00.7", "89.0\u00a0±\u00a00.0", "0.100",
                                       "0.300", "0.320", "3"]
    # an older run table without the new columns still renders, with a dash
    old = summarize(runs.drop(columns=["final_train_acc", "final_test_loss"]), ["bn"])
    cells = summary_table(old)["rows"][0]["cells"]
    assert cells[3] == "—" and cells[7] == "—"


def test_learning_curve_caption_says_when_test_curves_are_drawn(tmp_path):
    from bnlab.figures.curves import plot_learning_curves

    runs = pd.DataFrame([{"label": "a", "seed": 0, "status": "ok"}])
    rows = [{"label": "a", "seed": 0, "split": split, "step": st, "epoch": st / 2, "loss": 1.0 / (st + 1),
             "acc": 0.5 + 0.1 * st, "images": 100} for split in ("train", "val") for st in range(1, 4)]
    curves = pd.DataFrame(rows)
    assert dashed_test_note(curves) == ""
    assert plot_learning_curves(runs, curves, tmp_path / "a.png") == {"test_curves": False}
    with_test = pd.concat([curves, curves[curves.split == "val"].assign(split="test", images=50)])
    assert plot_learning_curves(runs, with_test, tmp_path / "b.png") == {"test_curves": True}
    note = dashed_test_note(with_test)
    assert "Dashed lines in the validation panels are the test split" in note and "on 50 test images" in note


def test_a_miss_says_what_may_differ_once_for_the_rows_that_share_it():
    missed = {**REFS[1], "caveat": "the paper states no batch size"}
    study = plan_with([missed, {**missed, "what": "outside 2"}, REFS[0]])
    (tab,) = references_tables(reference_rows(study, fake_runs(study, ACC)))
    verdicts = [row["cells"][-1] for row in tab["rows"]]
    assert verdicts[0] == verdicts[1] == ("ours 96.00% is 2.00 points below the band 98.00% to 100.00%; "
                                          "what may differ: note (a)")
    assert verdicts[2] == "ours 91.00% is inside the band 90.00% to 93.00%"  # no caveat beside a hit
    assert "(a) The paper states no batch size." in tab["notes"]
    alone = plan_with([missed])
    cell = references_tables(reference_rows(alone, fake_runs(alone, ACC)))[0]["rows"][0]["cells"][-1]
    assert cell.endswith("what may differ: the paper states no batch size")


def test_published_numbers_make_findings_only_when_one_was_scored():
    unscored = [{"verdict": "not scored", "what": "x", "source": "s", "reason": "setup differs"}]
    assert references_findings(unscored) == []
    scored = unscored + [{"verdict": "outside", "what": "LeNet-5 test error", "source": "LeCun et al. 1998",
                          "reason": "ours 1.20% is outside the band"}]
    text = " ".join(references_findings(scored))
    assert "0 reproduced (inside their band), 1 missed (outside), 1 not scored" in text
    assert "LeNet-5 test error (LeCun et al. 1998): ours 1.20% is outside the band." in text
