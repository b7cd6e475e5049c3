"""The trends analysis (seed 000 ex. 2e): pairs of cells that differ only in epochs, on tiny synthetic tables."""

import math

import pandas as pd
import pytest

from bnlab.analyses import get_analysis
from bnlab.analyses.evidence import end_slope
from bnlab.analyses.trends import (
    epoch_pairs,
    no_axis_finding,
    trend_rows,
    trend_sentence,
    trend_table,
)

AXES = ["bn", "epochs"]


def tables(short_acc, long_acc, long_val_tail, seeds=(0, 1), test_curve=False):
    """runs and curves of two settings (bn none / hidden) x epochs 2 and 4.

    short_acc / long_acc: {seed: final test acc} of the bn=none cells; long_val_tail: the 4-epoch bn=none
    run's validation accuracy at epochs 3, 3.5, 4 (earlier points rise linearly to 0.7 at epoch 2).
    The bn=hidden cells only exist at 4 epochs, so they pair with nothing.
    """
    runs, curves = [], []
    for bn, epochs in (("none", "2"), ("none", "4"), ("hidden", "4")):
        label = f"bn={bn}, epochs={epochs}"
        for seed in seeds:
            acc = (short_acc if epochs == "2" else long_acc)[seed] if bn == "none" else 0.9
            runs.append({"label": label, "seed": seed, "bn": bn, "epochs": epochs, "status": "ok",
                         "final_test_acc": acc})
            points = [(e / 2, 0.5 + 0.05 * e) for e in range(0, 5)]  # epochs 0..2, acc 0.5..0.7
            if epochs == "4":
                points += [(2.5, 0.72), *zip((3.0, 3.5, 4.0), long_val_tail[seed])]
            for step, (epoch, val) in enumerate(points):
                curves.append({"label": label, "seed": seed, "split": "val", "step": step, "epoch": epoch,
                               "acc": val, "loss": 1 - val})
                if test_curve:
                    curves.append({"label": label, "seed": seed, "split": "test", "step": step, "epoch": epoch,
                                   "acc": val - 0.01, "loss": 1 - val})
    return pd.DataFrame(runs), pd.DataFrame(curves)


def test_pairs_are_cells_that_differ_only_in_epochs():
    runs, _ = tables({0: .7, 1: .7}, {0: .8, 1: .8}, {0: (.7, .7, .7), 1: (.7, .7, .7)})
    pairs = epoch_pairs(runs, AXES)
    assert pairs == [{"setting": "bn=none", "short_label": "bn=none, epochs=2", "long_label": "bn=none, epochs=4",
                      "short_epochs": 2.0, "long_epochs": 4.0}]
    assert epoch_pairs(runs, ["bn"]) == []


def test_a_named_cell_names_its_setting_without_the_epochs():
    runs, _ = tables({0: .7, 1: .7}, {0: .8, 1: .8}, {0: (.7, .7, .7), 1: (.7, .7, .7)})
    runs = runs.assign(activation="relu", dropout_hidden="0.5")
    runs["label"] = runs["label"].str.replace(", epochs=", ", activation=relu, dropout_hidden=0.5, epochs=")
    axes = ["bn", "activation", "dropout_hidden", "epochs"]
    assert epoch_pairs(runs, axes)[0]["setting"] == "bn=none, activation=relu, dropout_hidden=0.5"
    runs["label"] = (runs["bn"].map({"none": "ReLU + dropout", "hidden": "ReLU + BN + dropout"})
                     + ", epochs=" + runs["epochs"])
    pair = epoch_pairs(runs, axes)[0]
    assert (pair["setting"], pair["short_label"]) == ("ReLU + dropout", "ReLU + dropout, epochs=2")


RISING = (0.74, 0.76, 0.78)


def t_interval_points(diffs):
    from scipy import stats
    d = pd.Series(diffs)
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return 100 * (d.mean() - half), 100 * (d.mean() + half)


def test_longer_training_that_helps_and_is_still_rising():
    runs, curves = tables({0: 0.70, 1: 0.72, 2: 0.71}, {0: 0.80, 1: 0.81, 2: 0.805},
                          {0: RISING, 1: (0.75, 0.77, 0.79), 2: RISING}, seeds=(0, 1, 2))
    row = trend_rows(runs, curves, AXES, last_points=3).iloc[0]
    assert row["short_mean"] == pytest.approx(0.71) and row["long_mean"] == pytest.approx(0.805)
    assert row["diff"] == pytest.approx(0.095) and row["n_paired"] == 3
    lo, hi = t_interval_points([0.10, 0.09, 0.095])
    assert (100 * row["ci_low"], 100 * row["ci_high"]) == pytest.approx((lo, hi))
    assert row["verdict"] == "improved" and row["paired_up"] == 3
    assert row["val_at_short"] == pytest.approx(0.70)  # the 4-epoch run's own curve at epoch 2
    assert row["slope"] == pytest.approx(0.04) and row["trend"] == "still rising"  # +0.02 per half epoch
    text = trend_sentence(row)
    assert text.startswith("bn=none: training 4 instead of 2 epochs raised the test accuracy from 71.0% ± 1.0 "
                           "to 80.5% ± 0.5 (+9.5 points; higher in 3 of 3 seeds).")
    assert (f"The paired difference: 95% interval [{lo:+.1f}, {hi:+.1f}] points over 3 paired seeds; it excludes 0: "
            "longer training helped.") in text
    assert "+4.00 points per epoch, rising in every seed: it was still improving" in text


def test_two_seeds_are_not_called_and_three_that_agree_are():
    two = trend_rows(*tables({0: 0.70, 1: 0.72}, {0: 0.80, 1: 0.81}, {0: RISING, 1: RISING}), AXES).iloc[0]
    assert two["verdict"] == "inconclusive" and math.isnan(two["ci_low"])
    assert ("With 2 paired seeds there is no interval (it needs 3): inconclusive; about 3 paired seeds at this "
            "spread would decide it.") in trend_sentence(two)
    three = trend_rows(*tables({0: 0.70, 1: 0.72, 2: 0.71}, {0: 0.80, 1: 0.81, 2: 0.80},
                               {s: RISING for s in range(3)}, seeds=(0, 1, 2)), AXES).iloc[0]
    assert three["verdict"] == "improved"


def test_longer_training_within_the_spread_and_levelled_off():
    runs, curves = tables({0: 0.70, 1: 0.76, 2: 0.73}, {0: 0.74, 1: 0.73, 2: 0.74},
                          {0: (0.75, 0.74, 0.74), 1: (0.74, 0.74, 0.73), 2: (0.75, 0.74, 0.74)}, seeds=(0, 1, 2))
    row = trend_rows(runs, curves, AXES, last_points=3).iloc[0]
    assert row["verdict"] == "no clear change" and row["paired_up"] == 2
    assert row["ci_low"] < 0 < row["ci_high"]
    assert row["trend"] == "flat or falling" and row["slope"] < 0
    text = trend_sentence(row)
    assert "(+0.7 points; higher in 2 of 3 seeds)" in text
    assert "points over 3 paired seeds; it includes 0: no clear change; more than 100 paired seeds" in text
    assert "flat or falling in every seed: it had levelled off" in text
    assert "helped" not in text and "still improving" not in text


def test_longer_training_that_hurts_and_mixed_ends():
    runs, curves = tables({0: 0.80, 1: 0.80, 2: 0.80}, {0: 0.70, 1: 0.71, 2: 0.70},
                          {0: (0.70, 0.71, 0.72), 1: (0.73, 0.71, 0.70), 2: (0.73, 0.71, 0.70)}, seeds=(0, 1, 2))
    row = trend_rows(runs, curves, AXES).iloc[0]
    assert row["verdict"] == "worse" and row["trend"] == "mixed"
    text = trend_sentence(row)
    assert "lowered the test accuracy from 80.0% ± 0.0 to 70.3% ± 0.6 (-9.7 points; higher in 0 of 3 seeds)" in text
    assert "longer training hurt" in text and "rising in 1 of 3 seeds: no clear trend" in text


def test_one_seed_is_inconclusive_and_test_curves_are_used():
    runs, curves = tables({0: 0.70}, {0: 0.80}, {0: (0.74, 0.76, 0.78)}, seeds=(0,), test_curve=True)
    row = trend_rows(runs, curves, AXES).iloc[0]
    assert row["verdict"] == "inconclusive" and math.isnan(row["ci_low"])
    assert row["test_at_short"] == pytest.approx(0.69) and row["test_at_end"] == pytest.approx(0.77)
    text = trend_sentence(row)
    assert "With 1 paired seed there is no interval (it needs 3): inconclusive" in text and "its test curve from 69.0% to 77.0%" in text
    assert "rising in its one seed" in text
    tab = trend_table(trend_rows(runs, curves, AXES), 3)
    assert "long run: test curve % → end" in tab["header"]
    assert tab["rows"][0]["cells"][1] == "2\u00a0→\u00a04"
    assert all(len(r["cells"]) == len(tab["header"]) for r in tab["rows"])


def test_a_diverged_long_cell_is_said_not_compared():
    runs, curves = tables({0: 0.70, 1: 0.72}, {0: 0.80, 1: 0.81}, {0: (.7, .7, .7), 1: (.7, .7, .7)})
    runs.loc[runs.label == "bn=none, epochs=4", "status"] = "diverged"
    row = trend_rows(runs, curves, AXES).iloc[0]
    assert row["verdict"] == "no finished runs"
    assert "cannot be compared: the longer cell has no finished run" in trend_sentence(row)


def test_end_slope_and_no_axis_sentence():
    curve = pd.DataFrame({"epoch": [1.0, 2.0, 3.0, 4.0], "acc": [0.1, 0.2, 0.4, 0.6]})
    assert end_slope(curve, 2) == pytest.approx(0.2) and math.isnan(end_slope(curve.tail(1), 3))
    assert no_axis_finding("init", ["5"]).startswith("Study 'init' has no epochs axis (its runs train 5 epochs)")


def test_registered_with_summary_as_prerequisite():
    entry = get_analysis("trends")
    assert entry.needs == ("summary",) and entry.defaults() == {"last_points": 3}
