"""Seconds per optimizer step of a study's networks, timed alone (bnlab/step_times.py)."""

import pandas as pd
import pytest

from bnlab.config import build_plan
from bnlab.step_times import read_step_times, time_alone, time_network, write_step_times


def study_runs(grid: dict, seeds=(0, 1)):
    cfg = {"data": {"val_size": 300}, "defaults": {"dataset": "digits", "model": "mlp", "widths": [16], "epochs": 1},
           "studies": {"s": {"title": "t", "question": "q", "seeds": list(seeds), "grid": grid}}}
    return build_plan(cfg).studies["s"].runs


class FakeTimer:
    """train_seconds of n steps: 1 ms per step, 2 ms with BN; the first call of each network (its warm-up)
    slower; every call recorded."""

    def __init__(self):
        self.calls = []

    def __call__(self, run, batch, steps, device):
        self.calls.append((run.bn, run.lr, batch, steps))
        per_step = 0.002 if run.bn != "none" else 0.001
        return per_step * steps * (1 + 0.1 * (len(self.calls) % 3))  # rounds differ a little


def test_each_network_is_timed_once_in_rounds_of_equal_steps():
    runs = study_runs({"bn": ["none", "hidden"], "lr": [0.1, 0.01]})  # 8 runs, 2 networks (lr is no network)
    timer = FakeTimer()
    table = time_alone(runs, {"val_size": 300}, "cpu", rounds=5, seconds=0.01, timer=timer, log=lambda _: None)
    assert len(table) == 8 and table["network"].nunique() == 2
    for bn in ("none", "hidden"):
        calls = [c for c in timer.calls if c[0] == bn]
        assert len(calls) == 1 + 5  # a warm-up, then the rounds, all of one step count
        assert calls[0][3] == 1 and len({c[3] for c in calls[1:]}) == 1
    bn_rows = table[table.run_dir.str.contains("bn~hidden")]
    assert bn_rows["s_per_step"].nunique() == 1  # the seeds and rates of a network share its timing
    row = bn_rows.iloc[0]
    assert row["s_per_step_min"] <= row["s_per_step"] <= row["s_per_step_max"]
    assert row["s_per_step"] == pytest.approx(0.002 * 1.1, rel=0.1)


def test_the_warm_up_sets_a_round_between_3_and_20_steps():
    run = study_runs({"bn": ["none"]}, seeds=[0])[0]
    assert time_network(run, 32, "cpu", rounds=1, seconds=100.0, timer=lambda *a: 0.001).steps == 20
    assert time_network(run, 32, "cpu", rounds=1, seconds=0.001, timer=lambda *a: 1.0).steps == 3


def test_a_real_network_timed_on_this_machine(tmp_path):
    runs = study_runs({"bn": ["none", "hidden"]}, seeds=[0])
    out = tmp_path / "timing" / "s" / "step_times.csv"
    write_step_times(runs, {"val_size": 300}, out, device="cpu", threads=1)
    table = pd.read_csv(out)
    assert (table["s_per_step"] > 0).all() and (table["rounds"] == 5).all()
    assert set(read_step_times(out)) == {r.relative_dir() for r in runs}
    assert read_step_times(tmp_path / "absent.csv") is None
