"""Speedup from BN on hand-built run/curve tables whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bnlab.analyses.speedup import (
    geomean_interval, loss_text, speedup_findings, speedup_paired, speedup_per_seed, time_text,
)

STEPS = [0, 100, 200, 300, 400, 500, 600, 700, 800]  # one cadence for every run


def fake_run(axes: dict[str, str], seed: int, accs: list[float], *, sec_per_step: float = 0.01,
             diverged_step: int | None = None) -> tuple[dict, list[dict]]:
    """A run row and its val/train curve rows; accs are the val accuracies at STEPS[:len(accs)].

    A diverged run's curve ends with an extra evaluation at its divergence step
    (chance accuracy, NaN loss), as the training loop writes it.
    """
    label = ", ".join(f"{k}={v}" for k, v in axes.items())
    status = "diverged" if diverged_step is not None else "ok"
    run = {"label": label, "seed": seed, **axes, "status": status,
           "diverged_step": float(diverged_step) if diverged_step is not None else math.nan,
           "best_val_acc": max(accs), "run_dir": f"runs/{label}/{seed}"}
    points = list(zip(STEPS, accs))
    if diverged_step is not None:
        points.append((diverged_step, 0.1))
    rows = []
    for step, acc in points:
        for split in ("train", "val"):
            rows.append({"label": label, "seed": seed, "split": split, "step": step, "epoch": step / 100,
                         "lr": 0.1, "loss": math.nan if step == diverged_step else 1 - acc,
                         # the train split gets a different accuracy so a mix-up would show
                         "acc": acc if split == "val" else min(1.0, acc + 0.05),
                         "train_seconds": step * sec_per_step, "wall_seconds": step * sec_per_step * 2,
                         "status": status})
    return run, rows


def tables(*made) -> tuple[pd.DataFrame, pd.DataFrame]:
    runs = pd.DataFrame([r for r, _ in made])
    curves = pd.DataFrame([row for _, rows in made for row in rows])
    return runs, curves


# baseline reaches its best (0.80) first at step 600; BN at 200
BASE = [0.10, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.80, 0.79]
FAST = [0.10, 0.50, 0.80, 0.85, 0.86, 0.87, 0.88, 0.88, 0.88]
SLOW = [0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.75, 0.79]  # best 0.79 < 0.80


def one_pair(bn_accs, **bn_kwargs) -> pd.DataFrame:
    runs, curves = tables(fake_run({"bn": "none"}, 0, BASE, sec_per_step=0.01),
                          fake_run({"bn": "hidden"}, 0, bn_accs, sec_per_step=0.015, **bn_kwargs))
    return speedup_per_seed(runs, curves, ["bn"])


def test_speedup_is_ratio_of_first_reach_steps_and_times():
    row = one_pair(FAST).iloc[0]
    assert row["setting"] == "all runs" and row["bn"] == "hidden" and row["outcome"] == "reached"
    assert row["tau"] == pytest.approx(0.80)
    assert (row["t_base"], row["t_bn"]) == (600, 200)
    assert row["speedup"] == pytest.approx(3.0)
    # 600 * 0.01 s vs 200 * 0.015 s: BN's slower steps shrink the wall-clock gain
    assert (row["wall_base"], row["wall_bn"]) == pytest.approx((6.0, 3.0))
    assert row["wall_speedup"] == pytest.approx(2.0)


def test_the_ratio_is_stated_at_the_resolution_of_the_evaluation_grid():
    # the baseline crossed 0.80 after step 500 and by 600, BN after 100 and by 200: between 500/200 and 600/100
    row = one_pair(FAST).iloc[0]
    assert (row["speedup_low"], row["speedup_high"]) == (pytest.approx(2.5), pytest.approx(6.0))
    paired = speedup_paired(one_pair(FAST)).iloc[0]
    assert (paired["grid_low"], paired["grid_high"], paired["n_ceiling"]) == (pytest.approx(2.5), pytest.approx(6.0), 0)
    sentence = speedup_findings(speedup_paired(one_pair(FAST)))[0]
    assert "the evaluation grid places it between 2.5x and 6.0x" in sentence and "at least" not in sentence


def test_a_speedup_at_the_grids_ceiling_says_so():
    # BN met the target at its first evaluation after step 0: at least 500/100, and the grid cannot say more
    early = [0.10, 0.80, 0.85, 0.86, 0.87, 0.88, 0.88, 0.88, 0.88]
    row = one_pair(early).iloc[0]
    assert row["speedup"] == pytest.approx(6.0)
    assert row["speedup_low"] == pytest.approx(5.0) and math.isinf(row["speedup_high"])
    paired = speedup_paired(one_pair(early))
    assert paired.iloc[0]["n_ceiling"] == 1 and math.isinf(paired.iloc[0]["grid_high"])
    sentence = speedup_findings(paired)[0]
    assert "BN met the target by its first evaluation in 1 of 1 seed" in sentence
    assert "says only that the speedup is at least 5.0x" in sentence


def step_times_of(runs: pd.DataFrame, seconds: dict[str, tuple[float, float, float]]) -> dict:
    """read_step_times's shape: run_dir -> its network's (median, min, max) seconds per step, by bn value."""
    return {r["run_dir"]: dict(zip(("s_per_step", "s_per_step_min", "s_per_step_max"), seconds[r["bn"]]))
            for _, r in runs.iterrows()}


def test_steps_become_time_at_each_networks_step_time_timed_alone():
    made = [fake_run({"bn": bn}, s, accs) for s in range(3) for bn, accs in (("none", BASE), ("hidden", FAST))]
    runs, curves = tables(*made)
    # BN's steps cost 1.5x the baseline's: 3x fewer steps are 2x less time
    times = step_times_of(runs, {"none": (0.010, 0.009, 0.011), "hidden": (0.015, 0.014, 0.016)})
    per_seed = speedup_per_seed(runs, curves, ["bn"], step_times=times)
    assert per_seed["time_speedup"].tolist() == pytest.approx([2.0] * 3)
    row = speedup_paired(per_seed).iloc[0]
    assert (row["time_speedup"], row["step_cost"]) == (pytest.approx(2.0), pytest.approx(1.5))
    assert (row["step_cost_low"], row["step_cost_high"]) == (pytest.approx(0.014 / 0.011), pytest.approx(0.016 / 0.009))
    sentence = speedup_findings(speedup_paired(per_seed))[0]
    assert "with each network's steps timed alone (BN's steps took 1.50x as long as the baseline's, 1.27–1.78x " \
        "over the timing rounds), it was 2.0x faster in time (2.00x, the same in every seed)." in sentence
    # steps far cheaper with BN turn the same steps ratio into a larger time ratio: the other way
    cheap = step_times_of(runs, {"none": (0.010, 0.009, 0.011), "hidden": (0.005, 0.004, 0.006)})
    assert speedup_paired(speedup_per_seed(runs, curves, ["bn"], step_times=cheap)).iloc[0]["time_speedup"] \
        == pytest.approx(6.0)
    # not timed (a partial report): no time, and the sentence says nothing about it
    untimed = speedup_paired(speedup_per_seed(runs, curves, ["bn"]))
    assert untimed.iloc[0]["time_speedup"] is None and "in time" not in speedup_findings(untimed)[0]
    # BN's steps so dear that fewer steps are more time: said as a slowdown
    dear = step_times_of(runs, {"none": (0.010, 0.009, 0.011), "hidden": (0.040, 0.039, 0.041)})
    slower = speedup_findings(speedup_paired(speedup_per_seed(runs, curves, ["bn"], step_times=dear)))[0]
    assert "it was 1.3x slower in time (0.75x" in slower


def loss_steps(levels: list[tuple[int, float]], last: int = 800) -> pd.DataFrame:
    """steps.parquet's (step, loss): linear between (step, loss) points, flat after the last point."""
    xs, ys = zip(*levels)
    step = np.arange(1, last + 1)
    return pd.DataFrame({"step": step, "loss": np.interp(step, xs, ys)})


def test_a_per_step_speedup_on_the_training_loss_is_finer_than_the_grid():
    runs, curves = tables(fake_run({"bn": "none"}, 0, BASE), fake_run({"bn": "hidden"}, 0, FAST))
    runs["steps_per_epoch"] = 20  # a quarter epoch: the 5-step average
    # the baseline's loss falls to 0.2 at step 600 and stays; BN's to 0.2 at step 220, then below
    steps = {runs.run_dir[0]: loss_steps([(1, 2.0), (600, 0.2), (800, 0.2)]),
             runs.run_dir[1]: loss_steps([(1, 2.0), (220, 0.2), (800, 0.05)])}
    row = speedup_per_seed(runs, curves, ["bn"], steps=steps).iloc[0]
    assert row["loss_window"] == 5 and row["loss_tau"] == pytest.approx(0.2, abs=1e-3)
    assert row["t_bn_loss"] == pytest.approx(220, abs=3)  # a step the grid (every 100) could not name
    assert row["loss_speedup"] == pytest.approx(row["t_base_loss"] / row["t_bn_loss"])
    paired = speedup_paired(speedup_per_seed(runs, curves, ["bn"], steps=steps))
    assert paired.iloc[0]["n_loss"] == 1
    assert "per step, on the training loss averaged over 5 steps, it reached the baseline's lowest in" \
        in speedup_findings(paired)[0]
    # a BN run whose loss stays above the baseline's lowest has no number, and the sentence none
    steps[runs.run_dir[1]] = loss_steps([(1, 2.0), (800, 0.5)])
    never = speedup_paired(speedup_per_seed(runs, curves, ["bn"], steps=steps))
    assert never.iloc[0]["n_loss"] == 0 and "training loss" not in speedup_findings(never)[0]


def test_a_baseline_at_its_first_evaluation_bounds_the_ratio_only_above_and_both_there_not_at_all():
    # the baseline met its best (0.50) by its first evaluation: its crossing is anywhere in (0, 100]
    early_base = [0.10, 0.50, 0.50, 0.50, 0.50, 0.50, 0.50, 0.50, 0.50]
    bn = [0.10, 0.30, 0.60, 0.60, 0.60, 0.60, 0.60, 0.60, 0.60]
    runs, curves = tables(fake_run({"bn": "none"}, 0, early_base), fake_run({"bn": "hidden"}, 0, bn))
    paired = speedup_paired(speedup_per_seed(runs, curves, ["bn"]))
    assert (paired.iloc[0]["grid_low"], paired.iloc[0]["grid_high"]) == (0.0, pytest.approx(1.0))
    assert "says only that the speedup is at most 1.0x" in speedup_findings(paired)[0]
    runs, curves = tables(fake_run({"bn": "none"}, 0, early_base), fake_run({"bn": "hidden"}, 0, FAST))
    both = speedup_paired(speedup_per_seed(runs, curves, ["bn"]))
    assert "the evaluation grid cannot bound it" in speedup_findings(both)[0]


def test_reaching_tau_exactly_at_an_evaluation_counts():
    # equal to tau (not above) at step 400 and nowhere before: t_bn = 400, not later
    bn = [0.10, 0.30, 0.50, 0.70, 0.80, 0.80, 0.80, 0.80, 0.80]
    row = one_pair(bn).iloc[0]
    assert (row["t_bn"], row["speedup"]) == (400, pytest.approx(1.5))


def test_not_reached_gives_no_number():
    per_seed = one_pair(SLOW)
    row = per_seed.iloc[0]
    assert row["outcome"] == "not reached" and math.isnan(row["speedup"]) and math.isnan(row["t_bn"])
    assert math.isnan(row["wall_speedup"])
    paired = speedup_paired(per_seed).iloc[0]
    assert paired["text"] == "not reached (0/1 seed)"
    assert paired["speedup"] is None or math.isnan(paired["speedup"])
    assert "never reached" in speedup_findings(speedup_paired(per_seed))[0]


def test_bn_diverged_before_reaching_tau():
    # curve stops at step 300 (below tau) and the diverged evaluation follows at 350
    row = one_pair([0.10, 0.50, 0.60, 0.70], diverged_step=350).iloc[0]
    assert row["outcome"] == "BN diverged" and math.isnan(row["speedup"])


def test_bn_diverging_after_reaching_tau_still_has_a_speedup():
    row = one_pair(FAST[:4], diverged_step=350).iloc[0]
    assert row["outcome"] == "reached" and row["speedup"] == pytest.approx(3.0)


def test_baseline_diverged_gives_no_target():
    runs, curves = tables(fake_run({"bn": "none"}, 0, BASE[:5], diverged_step=450),
                          fake_run({"bn": "hidden"}, 0, FAST))
    row = speedup_per_seed(runs, curves, ["bn"]).iloc[0]
    assert row["outcome"] == "baseline diverged" and math.isnan(row["speedup"]) and math.isnan(row["tau"])
    assert speedup_paired(speedup_per_seed(runs, curves, ["bn"])).iloc[0]["text"] == "baseline diverged (1/1)"


def test_baseline_that_never_improved_gives_no_ratio():
    flat = [0.5, 0.4, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]  # best is the step-0 accuracy
    runs, curves = tables(fake_run({"bn": "none"}, 0, flat), fake_run({"bn": "hidden"}, 0, FAST))
    row = speedup_per_seed(runs, curves, ["bn"]).iloc[0]
    assert row["outcome"] == "baseline never improved" and math.isnan(row["speedup"])


def test_missing_partners_show_as_rows():
    runs, curves = tables(fake_run({"act": "relu", "bn": "none"}, 0, BASE),
                          fake_run({"act": "relu", "bn": "hidden"}, 0, FAST),
                          fake_run({"act": "tanh", "bn": "none"}, 0, BASE),  # tanh has no BN run
                          fake_run({"act": "relu", "bn": "hidden"}, 1, FAST))  # seed 1 has no baseline
    per_seed = speedup_per_seed(runs, curves, ["act", "bn"])
    got = {(r.setting, r.seed): r.outcome for r in per_seed.itertuples()}
    assert got == {("act=relu", 0): "reached", ("act=relu", 1): "no baseline", ("act=tanh", 0): "no BN run"}


def test_different_cadence_is_refused():
    runs, curves = tables(fake_run({"bn": "none"}, 0, BASE), fake_run({"bn": "hidden"}, 0, FAST))
    curves.loc[(curves.label == "bn=hidden") & (curves.step == 300), "step"] = 250
    with pytest.raises(ValueError, match="different steps"):
        speedup_per_seed(runs, curves, ["bn"])


def test_grid_pairs_by_setting_and_seed():
    # the speedup encodes (activation, bn, seed) so any mis-pairing changes a number:
    # BN first reaches tau (0.80) at step 100 * k with k distinct per run
    made, expected = [], {}
    for a_i, act in enumerate(["relu", "tanh"]):
        for seed in range(3):
            t_base = 800 - 100 * seed - 100 * a_i  # 800, 700, 600 (relu); 700, 600, 500 (tanh)
            base = [0.1 + 0.7 * min(1.0, s / t_base) for s in STEPS]
            made.append(fake_run({"activation": act, "bn": "none"}, seed, base))
            for b_i, bn in enumerate(["hidden", "input+hidden"]):
                t_bn = 100 * (1 + b_i + (seed % 2))  # 100..300
                accs = [0.1 if s == 0 else 0.5 if s < t_bn else 0.85 for s in STEPS]
                made.append(fake_run({"activation": act, "bn": bn}, seed, accs))
                expected[(f"activation={act}", bn, seed)] = t_base / t_bn
    runs, curves = tables(*made)
    rng = np.random.default_rng(1)
    runs = runs.sample(frac=1, random_state=1).reset_index(drop=True)
    curves = curves.iloc[rng.permutation(len(curves))].reset_index(drop=True)
    per_seed = speedup_per_seed(runs, curves, ["activation", "bn"])
    assert len(per_seed) == 12 and set(per_seed.outcome) == {"reached"}
    got = {(r.setting, r.bn, r.seed): r.speedup for r in per_seed.itertuples()}
    assert got == pytest.approx(expected)
    paired = speedup_paired(per_seed)
    assert len(paired) == 4 and set(paired.n_seeds) == {3}
    relu_hidden = paired[(paired.setting == "activation=relu") & (paired.bn == "hidden")].iloc[0]
    geo = math.exp(np.mean(np.log([800 / 100, 700 / 200, 600 / 100])))
    assert relu_hidden["speedup"] == pytest.approx(geo)
    assert relu_hidden["ci_low"] < geo < relu_hidden["ci_high"]


def per_seed_table(speedups: list[float], outcomes: list[str] | None = None) -> pd.DataFrame:
    """A per-seed table with given speedups (NaN for non-reached outcomes); wall = speedup / 2; the grid
    allows 0.8x to 1.25x each."""
    outcomes = outcomes or ["reached"] * len(speedups)
    return pd.DataFrame({
        "setting": "all runs", "bn": "hidden", "baseline": "none", "seed": range(len(speedups)),
        "tau": 0.8, "speedup": speedups, "speedup_low": [s * 0.8 for s in speedups],
        "speedup_high": [s * 1.25 for s in speedups], "wall_speedup": [s / 2 for s in speedups], "outcome": outcomes,
        **{c: math.nan for c in ("s_step_base", "s_step_bn", "s_step_base_min", "s_step_base_max", "s_step_bn_min",
                                 "s_step_bn_max", "time_speedup", "loss_window", "loss_speedup")}})


def test_equal_speedups_are_said_to_be_the_same_not_given_a_point_interval():
    row = speedup_paired(per_seed_table([2.0, 2.0, 2.0])).iloc[0]
    assert row["speedup"] == pytest.approx(2.0)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((2.0, 2.0))
    assert row["wall_speedup"] == pytest.approx(1.0)
    assert row["text"] == "2.00x (3/3 seeds, the same in each)"
    sentence = speedup_findings(speedup_paired(per_seed_table([2.0, 2.0, 2.0])))[0]
    assert "(the same in every seed, 3 seeds)" in sentence and "CI" not in sentence


def test_geometric_mean_and_t_interval_of_the_log_ratios():
    from scipy import stats
    values = [1.0, 4.0, 2.0]
    row = speedup_paired(per_seed_table(values)).iloc[0]
    assert row["speedup"] == pytest.approx(2.0)  # not the arithmetic 2.33
    logs = np.log(values)
    half = stats.t.ppf(0.975, 2) * logs.std(ddof=1) / math.sqrt(3)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((2.0 * math.exp(-half), 2.0 * math.exp(half)))
    assert row["text"] == f"2.00x [{row['ci_low']:.2f}, {row['ci_high']:.2f}] (3/3 seeds)"
    # two seeds: a geometric mean, no interval
    two = speedup_paired(per_seed_table([1.0, 4.0])).iloc[0]
    assert two["speedup"] == pytest.approx(2.0) and two["ci_low"] is None
    assert two["text"] == "2.00x (2/2 seeds, no interval from fewer than 3)"
    assert geomean_interval(np.array([1.0, 4.0])) == (None, None)


def test_one_reached_seed_has_no_interval():
    row = speedup_paired(per_seed_table([2.0])).iloc[0]
    assert row["speedup"] == pytest.approx(2.0) and row["ci_low"] is None and row["ci_high"] is None
    assert row["text"] == "2.00x (1/1 seed, no interval from fewer than 3)"
    assert "no interval" in speedup_findings(speedup_paired(per_seed_table([2.0])))[0]


def test_mixed_outcomes_are_summarised_honestly():
    table = per_seed_table([1.5, 2.4, math.nan], ["reached", "reached", "not reached"])
    row = speedup_paired(table).iloc[0]
    assert (row["n_seeds"], row["n_reached"], row["n_not_reached"]) == (3, 2, 1)
    assert row["speedup"] == pytest.approx(math.sqrt(1.5 * 2.4))
    assert row["text"] == "1.90x (2/3 seeds reached, no interval from fewer than 3; 1 not reached)"
    sentence = speedup_findings(speedup_paired(table))[0]
    assert "2 of 3 seeds reached it" in sentence and "1 never reached it" in sentence
    div = speedup_paired(per_seed_table([math.nan] * 2, ["BN diverged"] * 2)).iloc[0]
    assert div["text"] == "BN diverged (2/2)"


def test_findings_quote_the_table():
    runs, curves = tables(*[fake_run({"activation": "relu", "bn": bn}, s, accs, sec_per_step=sps)
                            for s in range(2) for bn, accs, sps in
                            (("none", BASE, 0.01), ("hidden", FAST, 0.015))])
    paired = speedup_paired(speedup_per_seed(runs, curves, ["activation", "bn"]))
    assert speedup_findings(paired) == [
        "With activation=relu: hidden BN reached the no-BN run's best validation accuracy (curve subset) (80.0%) "
        "in 3.0x fewer steps (2 seeds, no interval); the evaluation grid places it between 2.5x and 6.0x."]


def test_the_analysis_publishes_per_seed_measures_keyed_by_the_bn_run(tmp_path):
    """run_analysis on a study whose summary tables are hand-built: one measure entry per BN run and seed,
    its value the per-seed CSV's, its params the BN run's."""
    from bnlab.analyses import run_analysis
    from bnlab.analyses.evidence import matches
    from bnlab.config import build_plan

    cfg = {"data": {"val_size": 300}, "defaults": {"dataset": "digits", "model": "mlp", "widths": [16], "epochs": 1},
           "studies": {"s": {"title": "t", "question": "q", "seeds": [0, 1],
                             "grid": {"activation": ["relu", "tanh"], "bn": ["none", "hidden"]}}}}
    study = build_plan(cfg).studies["s"]
    accs = {("none", 0): BASE, ("none", 1): BASE, ("hidden", 0): FAST, ("hidden", 1): SLOW}
    made = []
    for spec in study.runs:
        values = spec.as_strings()
        run, rows = fake_run({a: values[a] for a in study.axes}, spec.seed, accs[(spec.bn, spec.seed)])
        assert run["label"] == study.label(spec)
        made.append(({**run, "run_dir": spec.relative_dir()}, rows))
    runs, curves = tables(*made)
    summary = tmp_path / "studies" / "s" / "summary"
    summary.mkdir(parents=True)
    runs.to_csv(summary / "runs.csv", index=False)
    curves.to_parquet(summary / "curves.parquet", index=False)
    frag = run_analysis(study, "speedup", results=tmp_path)
    per_seed = pd.read_csv(tmp_path / "studies" / "s" / "speedup" / "speedup_per_seed.csv")
    measures = frag["stats"]["measures"]
    assert set(measures) == {"speedup"}  # not the seconds of jobs that shared the machine
    bn_runs = [r for r in study.runs if r.bn == "hidden"]
    for name in measures:
        entries = measures[name]
        assert len(entries) == len(bn_runs) == len(per_seed)
        for entry, (_, row) in zip(entries, per_seed.iterrows()):
            (spec,) = [r for r in bn_runs if matches(r.as_strings(), entry["params"]) and r.seed == entry["seed"]]
            assert entry["params"] == {k: v for k, v in spec.as_strings().items() if k != "seed"}
            assert (spec.activation, spec.seed) == (row["activation"], row["seed"])
            if row["outcome"] == "reached":
                assert entry["value"] == pytest.approx(row[name])
            else:
                assert entry["value"] is None and math.isnan(row[name])
    got = {(e["params"]["activation"], e["seed"]): e["value"] for e in measures["speedup"]}
    assert got == {("relu", 0): pytest.approx(3.0), ("tanh", 0): pytest.approx(3.0),
                   ("relu", 1): None, ("tanh", 1): None}  # seed 1: SLOW never reaches the baseline's best


def test_equal_speedups_whose_float_mean_is_not_exact_are_still_the_same():
    """156/58 three times: the mean of their logs is an ulp off, and a std of 1e-16 once printed
    '2.69x [2.69, 2.69]' (the default report's bn_cifar, 3 seeds that all crossed at step 58 of 156)."""
    ratio = 156 / 58
    row = speedup_paired(per_seed_table([ratio] * 3)).iloc[0]
    assert row["ci_low"] == row["ci_high"]
    assert row["text"] == "2.69x (3/3 seeds, the same in each)"
    spread = speedup_paired(per_seed_table([ratio, ratio, ratio * 1.01])).iloc[0]
    assert spread["ci_low"] < spread["ci_high"] and "[" in spread["text"]


def test_time_and_loss_cells_say_the_same_instead_of_printing_a_point_interval():
    """The time speedup multiplies each seed's step ratio by one step-cost ratio timed once per network, so
    seeds that crossed at the same step give the same time speedup: '2.00x [2.00, 2.00]' was printed."""
    same = pd.Series({"time_speedup": 2.0, "time_ci_low": 2.0, "time_ci_high": 2.0, "step_cost": 1.34,
                      "loss_speedup": 1.5, "loss_ci_low": 1.5, "loss_ci_high": 1.5, "n_loss": 3, "n_seeds": 3})
    assert time_text(same) == "2.00x (the same in each seed) (BN step 1.34x)"
    assert loss_text(same) == "1.50x (the same in each seed) (3/3)"
    apart = same.copy()
    apart["time_ci_low"], apart["loss_ci_high"] = 1.8, 1.7
    assert time_text(apart) == "2.00x [1.80, 2.00] (BN step 1.34x)"
    assert loss_text(apart) == "1.50x [1.50, 1.70] (3/3)"
