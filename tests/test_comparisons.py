"""Declared comparisons (`compare:`): pairs of cells, seeds paired, intervals and words, on fake run folders
whose metrics.json files are written as training writes them, read through the summary analysis's runs.csv."""

import math

import pandas as pd
import pytest

from bnlab.analyses import get_analysis, resolve_study_analyses, run_analysis
from bnlab.analyses.comparisons import metric_phrase
from bnlab.config import ConfigError, build_plan
from bnlab.runfolder import CONFIG, HISTORY, METRICS, read_json, write_json, write_parquet

METRIC_NAMES = ("final_train_acc", "final_test_acc", "final_train_loss", "final_test_loss")


def study_with(compare, seeds=(0, 1), grid=None):
    cfg = {"data": {"val_size": 300},
           "defaults": {"dataset": "digits", "model": "mlp", "widths": [16], "epochs": 1, "batch_size": 64},
           "studies": {"s": {"title": "t", "question": "q", "grid": grid or {"bn": ["none", "hidden"]},
                             "seeds": list(seeds), "compare": compare}}}
    return resolve_study_analyses(build_plan(cfg).studies["s"])


PAIR = [{"name": "BN against none", "a": {"bn": "hidden"}, "b": {"bn": "none"}}]


def write_runs(root, study, values, diverged=(), rising=()):
    """A run folder per run: config.json, history.parquet and metrics.json.

    values: {(bn, seed): (train_acc, test_acc, train_loss, test_loss)}; runs in `diverged` ((bn, seed))
    get status "diverged" and a non-finite loss, as the trainer writes them."""
    for run in study.runs:
        folder = root / "runs" / run.relative_dir()
        train_acc, test_acc, train_loss, test_loss = values[(run.bn, run.seed)]
        status = "diverged" if (run.bn, run.seed) in diverged else "ok"
        write_json(folder / CONFIG, run.as_strings())
        # a flat curve, or for runs in `rising` one still gaining 2 points per epoch at its end
        slope = 0.02 if (run.bn, run.seed) in rising else 0.0
        write_parquet(folder / HISTORY, pd.DataFrame(
            [{"step": s, "epoch": s / 10, "split": split, "loss": test_loss, "acc": test_acc - slope * (2 - s / 10)}
             for s in (0, 10, 20) for split in ("train", "val")]))
        write_json(folder / METRICS, {
            "status": status, "steps": 10, "train_seconds": 1.0, "best_val_acc": test_acc,
            "final_train_acc": train_acc, "final_test_acc": test_acc,
            "final_train_loss": float("nan") if status == "diverged" else train_loss,
            "final_test_loss": test_loss})


def compare(tmp_path, study, values, diverged=(), rising=()):
    write_runs(tmp_path, study, values, diverged, rising)
    run_analysis(study, "summary", results=tmp_path)
    return run_analysis(study, "comparisons", results=tmp_path)


def t_half_width(diffs):
    """Half-width of the 95% paired t-interval, computed here from its textbook formula."""
    from scipy import stats
    d = pd.Series(diffs)
    return stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))


# (train_acc, test_acc, train_loss, test_loss) per (bn, seed): BN about 5 points higher in every seed
CLEAR = {("hidden", 0): (0.95, 0.90, 0.20, 0.30), ("hidden", 1): (0.97, 0.92, 0.18, 0.28),
         ("hidden", 2): (0.96, 0.91, 0.19, 0.29),
         ("none", 0): (0.90, 0.85, 0.30, 0.40), ("none", 1): (0.91, 0.86, 0.29, 0.39),
         ("none", 2): (0.90, 0.855, 0.29, 0.395)}


def test_a_clearly_higher_over_three_seeds(tmp_path):
    study = study_with(PAIR, seeds=(0, 1, 2))
    assert study.analyses[-1] == "comparisons"  # added for the compare: key
    frag = compare(tmp_path, study, CLEAR)
    (c,) = frag["stats"]["comparisons"]
    assert c["name"] == "BN against none" and c["a"] == {"bn": "hidden"} and c["b"] == {"bn": "none"}
    assert c["a_label"] == "bn=hidden" and c["b_label"] == "bn=none"
    test = c["metrics"]["final_test_acc"]
    diffs = [0.05, 0.06, 0.055]
    assert test["a"] == pytest.approx(0.91) and test["b"] == pytest.approx(0.855)
    assert test["diff"] == pytest.approx(0.055) and test["seeds"] == 3 and test["diffs"] == pytest.approx(diffs)
    half = t_half_width(diffs)  # 4.30 x 0.005 / sqrt(3) = 0.0124: wider than the range of the differences
    assert test["interval"] == pytest.approx([0.055 - half, 0.055 + half])
    assert test["interval"][0] < 0.05 and test["direction"] == "higher"
    assert c["metrics"]["final_test_loss"]["direction"] == "lower"
    (sentence,) = frag["findings"]
    lo, hi = (100 * (0.055 - half), 100 * (0.055 + half))
    assert sentence.startswith("BN against none (bn=hidden vs bn=none): test accuracy 91.0% vs 85.5%, +5.5 points "
                               f"(3 seeds, 95% interval [{lo:+.1f},\u00a0{hi:+.1f}]): higher; train accuracy")
    assert "no clear" not in sentence and "diverged" not in sentence
    # the files the fragment is built from
    out = tmp_path / "studies" / "s" / "comparisons"
    long = pd.read_csv(out / "comparisons.csv")
    assert {"comparison", "metric", "seed", "a", "b", "diff"} <= set(long.columns)
    assert len(long) == 4 * 3 and set(long.metric) == set(METRIC_NAMES)
    row = long[(long.metric == "final_test_acc") & (long.seed == 1)].iloc[0]
    assert (row.a, row.b, row["diff"]) == pytest.approx((0.92, 0.86, 0.06))
    numbers = frag["tables"][1]
    assert numbers["header"] == ["comparison", "metric", "a", "b", "a - b", "95% interval", "seeds"]
    assert numbers["rows"][0]["cells"] == ["BN against none", "test acc %", "91.0", "85.5", "+5.5",
                                           f"[{lo:+.1f},\u00a0{hi:+.1f}] higher", "3"]
    assert "paired t-interval" in numbers["caption"] and "at least 3" in numbers["caption"]
    assert frag["tables"][0]["rows"][0]["cells"] == ["BN against none", "bn=hidden", "bn=none", "3/3", "3/3"]


def test_a_pair_with_a_run_still_training_is_not_called_until_it_is_flat(tmp_path):
    study = study_with(PAIR, seeds=(0, 1, 2))
    rising = compare(tmp_path / "rising", study, CLEAR, rising={("none", 2)})
    c = rising["stats"]["comparisons"][0]
    assert c["still_training"] == ["bn=none seed 2: +2.00 points/epoch at epoch 2"]
    assert {m["direction"] for m in c["metrics"].values()} == {"not called: still training"}
    sentence = rising["findings"][0]
    assert "higher" not in sentence and sentence.endswith(
        "Still training: 1 run rose faster than 0.5 points per epoch over their last 3 validation points "
        "(bn=none seed 2: +2.00 points/epoch at epoch 2).")
    flat = compare(tmp_path / "flat", study, CLEAR)
    assert flat["stats"]["comparisons"][0]["metrics"]["final_test_acc"]["direction"] == "higher"


def test_two_seeds_that_agree_are_not_called_and_a_third_decides(tmp_path):
    two = compare(tmp_path / "two", study_with(PAIR, seeds=(0, 1)), CLEAR)
    test = two["stats"]["comparisons"][0]["metrics"]["final_test_acc"]
    assert test["seeds"] == 2 and test["interval"] is None and test["direction"] == "seeds agree in sign"
    sentence = two["findings"][0]
    assert "+5.5 points (2 seeds: +5.0 and +6.0, seeds agree in sign; no direction from fewer than 3)" in sentence
    assert "higher" not in sentence and "interval" not in sentence
    assert sentence.endswith(" Not called: this study runs 2 seeds per cell: give it 3 or more to decide it.")
    assert two["tables"][1]["rows"][0]["cells"][5] == "no interval: +5.0 and +6.0, seeds agree in sign"
    # the same effect with a third seed: called
    three = compare(tmp_path / "three", study_with(PAIR, seeds=(0, 1, 2)), CLEAR)
    assert three["stats"]["comparisons"][0]["metrics"]["final_test_acc"]["direction"] == "higher"


def test_seeds_that_disagree_give_no_clear_difference(tmp_path):
    study = study_with(PAIR, seeds=(0, 1, 2))
    values = {("hidden", 0): (0.95, 0.90, 0.20, 0.30), ("hidden", 1): (0.90, 0.86, 0.30, 0.40),
              ("hidden", 2): (0.92, 0.88, 0.25, 0.36),
              ("none", 0): (0.90, 0.86, 0.25, 0.35), ("none", 1): (0.92, 0.88, 0.25, 0.35),
              ("none", 2): (0.91, 0.87, 0.24, 0.35)}
    frag = compare(tmp_path, study, values)
    metrics = frag["stats"]["comparisons"][0]["metrics"]
    test = metrics["final_test_acc"]
    assert test["diffs"] == pytest.approx([0.04, -0.02, 0.01])  # a positive mean, not called
    assert test["interval"][0] < 0 < test["interval"][1]
    assert test["direction"] == "no clear difference" and test["diff"] == pytest.approx(0.01)
    assert {m["direction"] for m in metrics.values()} == {"no clear difference"}
    sentence = frag["findings"][0]
    assert "test accuracy 88.0% vs 87.0%, +1.0 points (3 seeds, 95% interval [" in sentence
    assert "higher" not in sentence and "lower" not in sentence


def test_identical_differences_are_said_so_not_printed_as_an_interval(tmp_path):
    study = study_with(PAIR, seeds=(0, 1, 2))
    values = {("hidden", s): (0.95, 0.90, 0.20, 0.30) for s in range(3)}
    values |= {("none", s): (0.95, 0.85, 0.20, 0.30) for s in range(3)}
    frag = compare(tmp_path, study, values)
    test = frag["stats"]["comparisons"][0]["metrics"]["final_test_acc"]
    assert test["interval"] == pytest.approx([0.05, 0.05]) and test["direction"] == "higher"
    sentence = frag["findings"][0]
    assert "+5.0 points (the same in all 3 seeds): higher" in sentence
    assert "[+5.0,\u00a0+5.0]" not in sentence
    assert frag["tables"][1]["rows"][0]["cells"][5] == "same in every seed: higher"


def test_one_seed_states_the_difference_without_calling_it(tmp_path):
    study = study_with(PAIR, seeds=(0,))
    values = {("hidden", 0): (0.95, 0.90, 0.20, 0.30), ("none", 0): (0.90, 0.80, 0.30, 0.40)}
    frag = compare(tmp_path, study, values)
    test = frag["stats"]["comparisons"][0]["metrics"]["final_test_acc"]
    assert test["seeds"] == 1 and test["interval"] is None and test["diff"] == pytest.approx(0.10)
    sentence = frag["findings"][0]
    assert sentence.startswith("BN against none (bn=hidden vs bn=none), one seed: no spread to judge by: "
                               "test accuracy 90.0% vs 80.0%, +10.0 points; "
                               "train accuracy +5.0 points, test loss -0.100, train loss -0.100 (a - b).")
    assert "higher" not in sentence and "lower" not in sentence and "interval" not in sentence
    assert frag["tables"][1]["rows"][0]["cells"][5] == "one seed: no interval"


def test_one_seed_said_per_metric_when_other_metrics_have_more():
    one = {"seeds": 1, "a": 0.9, "b": 0.8, "diff": 0.1, "interval": None, "direction": "one seed"}
    assert metric_phrase("final_test_acc", "test accuracy", one) == \
        "test accuracy 90.0% vs 80.0%, +10.0 points (one seed: no spread to judge by)"
    none = {"seeds": 0, "a": None, "b": None, "diff": None, "interval": None, "direction": "no pair"}
    assert metric_phrase("final_test_loss", "test loss", none) == "test loss: no seed with a finished run of both cells"


def test_a_diverged_run_is_left_out_and_reported(tmp_path):
    study = study_with(PAIR, seeds=(0, 1, 2))
    values = {("hidden", 0): (0.95, 0.90, 0.20, 0.30), ("hidden", 1): (0.96, 0.91, 0.20, 0.30),
              # seed 2 of a diverged: its (chance-level) accuracy would drag a's mean down if it were used
              ("hidden", 2): (0.10, 0.10, 0.20, 0.30),
              ("none", 0): (0.90, 0.85, 0.30, 0.40), ("none", 1): (0.90, 0.87, 0.30, 0.40),
              ("none", 2): (0.90, 0.86, 0.30, 0.40)}
    frag = compare(tmp_path, study, values, diverged={("hidden", 2)})
    c = frag["stats"]["comparisons"][0]
    assert c["a_diverged"] == 1 and c["a_runs"] == 3 and c["b_diverged"] == 0
    test = c["metrics"]["final_test_acc"]
    assert test["seeds"] == 2 and test["a"] == pytest.approx(0.905) and test["b"] == pytest.approx(0.86)
    assert test["interval"] is None and test["direction"] == "seeds agree in sign"  # 2 paired: not called
    sentence = frag["findings"][0]
    assert "a diverged in 1/3 runs (seed 2)" in sentence and "+4.5 points (2 seeds: +5.0 and +4.0" in sentence
    long = pd.read_csv(tmp_path / "studies" / "s" / "comparisons" / "comparisons.csv")
    left = long[(long.seed == 2) & (long.metric == "final_test_acc")].iloc[0]
    assert math.isnan(left.a) and math.isnan(left["diff"]) and left.a_status == "diverged"
    rows = frag["tables"][1]["rows"]
    assert rows[0]["diverged"] and rows[0]["cells"][-1] == "2 (diverged: a 1/3)"
    assert frag["tables"][0]["rows"][0]["cells"][3] == "2/3"


def test_every_declared_pair_gets_a_sentence_in_config_order(tmp_path):
    grid = {"bn": ["none", "hidden"], "dropout_hidden": [0, 0.5]}
    pairs = [{"name": "BN + dropout vs dropout", "a": {"bn": "hidden", "dropout_hidden": 0.5},
              "b": {"bn": "none", "dropout_hidden": 0.5}},
             {"name": "dropout vs BN", "a": {"bn": "none", "dropout_hidden": 0.5},
              "b": {"bn": "hidden", "dropout_hidden": "0"}}]
    study = study_with(pairs, seeds=(0,), grid=grid)
    acc = {("none", "0"): 0.80, ("none", "0.5"): 0.82, ("hidden", "0"): 0.88, ("hidden", "0.5"): 0.86}
    for run in study.runs:
        folder = tmp_path / "runs" / run.relative_dir()
        a = acc[(run.bn, run.as_strings()["dropout_hidden"])]
        write_json(folder / CONFIG, run.as_strings())
        write_parquet(folder / HISTORY, pd.DataFrame([{"step": 0, "epoch": 0.0, "split": "val", "loss": 1.0,
                                                       "acc": a}]))
        write_json(folder / METRICS, {"status": "ok", "final_train_acc": a, "final_test_acc": a,
                                      "final_train_loss": 1 - a, "final_test_loss": 1 - a})
    run_analysis(study, "summary", results=tmp_path)
    frag = run_analysis(study, "comparisons", results=tmp_path)
    first, second = frag["findings"]
    assert first.startswith("BN + dropout vs dropout (bn=hidden, dropout_hidden=0.5 vs bn=none, dropout_hidden=0.5), "
                            "one seed: no spread to judge by: test accuracy 86.0% vs 82.0%, +4.0 points")
    assert second.startswith("dropout vs BN (bn=none, dropout_hidden=0.5 vs bn=hidden, dropout_hidden=0), "
                             "one seed: no spread to judge by: test accuracy 82.0% vs 88.0%, -6.0 points")
    stats = frag["stats"]["comparisons"]
    assert [c["name"] for c in stats] == ["BN + dropout vs dropout", "dropout vs BN"]
    assert stats[1]["b"] == {"bn": "hidden", "dropout_hidden": "0"}
    assert len(frag["tables"][1]["rows"]) == 2 * 4
    saved = read_json(tmp_path / "studies" / "s" / "comparisons" / "fragment.json")
    assert saved["stats"]["comparisons"][0]["metrics"]["final_test_acc"]["diff"] == pytest.approx(0.04)


def test_selectors_must_name_one_cell():
    grid = {"bn": ["none", "hidden"], "dropout_hidden": [0, 0.5]}
    with pytest.raises(ConfigError, match=r"studies\.s\.compare\[0\]\.a'.*matches 2 cells"):
        study_with([{"name": "n", "a": {"bn": "hidden"}, "b": {"bn": "none", "dropout_hidden": 0}}], grid=grid)
    with pytest.raises(ConfigError, match=r"studies\.s\.compare\[0\]\.a'.*matches no run"):
        study_with([{"name": "n", "a": {"dropout_hidden": 0.3}, "b": {"bn": "none", "dropout_hidden": 0}}], grid=grid)
    with pytest.raises(ConfigError, match=r"studies\.s\.compare\[1\]\.b'.*matches no run"):
        study_with(PAIR + [{"name": "n", "a": {"bn": "none"}, "b": {"bn": "input+hidden"}}])


def test_registered_after_summary():
    entry = get_analysis("comparisons")
    assert entry.needs == ("summary",) and METRICS in entry.reads
    assert "comparisons" not in study_with([]).analyses
