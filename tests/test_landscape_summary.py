"""Landscape section numbers and sentences (bnlab.analyses.loss_landscape.summary), and the measures the analysis publishes."""

import pandas as pd
import pytest

from bnlab.analyses.loss_landscape.summary import landscape_findings, landscape_table


def test_table_and_findings_from_bands():
    course = pd.DataFrame({
        "bn": ["none"] * 3 + ["hidden"] * 3, "step": [1, 2, 3] * 2,
        "loss_min": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0], "loss_max": [2.0, 2.0, 2.0, 1.5, 1.5, 1.5],
        "grad_change_median": [float("nan"), 0.4, 0.2, float("nan"), 0.1, 0.1], "beta": [None, 0.5, 0.3, None, 0.2, 0.1],
    })
    probes = pd.DataFrame({"bn": ["none", "none", "hidden", "hidden"], "step": [2, 4, 2, 4],
                           "loss_min": [1.0, 1.0, 1.0, 1.0], "loss_max": [1.4, 1.2, 1.1, 1.1],
                           "grad_change_max": [0.2, 0.2, 0.05, 0.05], "beta_max": [10.0, 30.0, 2.0, 2.0]})
    table = landscape_table(course, probes)
    none, bn = table.iloc[0], table.iloc[1]
    assert none.course_loss_band == 1.0 and bn.course_loss_band == 0.5
    assert abs(none.course_grad_change - 0.3) < 1e-12 and none.course_beta_max == 0.5
    assert abs(none.probe_loss_band - 0.3) < 1e-12 and none.probe_beta == 20.0 and bn.probed_steps == 2
    text = " ".join(landscape_findings(table))
    assert "loss band across learning rates (course method) was on average 2.00x smaller" in text
    assert "effective beta-smoothness (Santurkar probes) was on average 10.00x smaller than without BN (2 vs 20)" in text


def test_no_probes_and_no_baseline():
    course = pd.DataFrame({"bn": ["hidden"], "step": [1], "loss_min": [1.0], "loss_max": [1.0]})
    table = landscape_table(course, None)
    assert "probe_beta" not in table.columns
    assert landscape_findings(table) == []


def test_the_analysis_publishes_its_table_as_measures(tmp_path, digits_path):
    """A tiny study through summary and landscape: every measure is a number of landscape.csv, keyed by what
    the runs behind its row share."""
    from bnlab.analyses import run_analysis
    from bnlab.analyses.evidence import matches
    from bnlab.config import build_plan
    from bnlab.train import execute_run

    cfg = {"data": {"val_size": 300},
           "defaults": {"dataset": "digits", "model": "mlp", "widths": [16], "epochs": 1, "batch_size": 64},
           "studies": {"l": {"title": "Tiny", "question": "q", "fixed": {"probe_every": 5, "probe_etas": 2},
                             "grid": {"bn": ["none", "hidden"], "lr": [1e-3, 1e-2]}, "seeds": [0]}}}
    study = build_plan(cfg).studies["l"]
    for run in study.runs:
        execute_run(run, digits_path, tmp_path / "runs" / run.relative_dir(), log=lambda _: None)
    run_analysis(study, "summary", results=tmp_path)
    frag = run_analysis(study, "landscape", results=tmp_path)
    table = pd.read_csv(tmp_path / "studies" / "l" / "landscape" / "landscape.csv", dtype={"bn": str})
    measures = frag["stats"]["measures"]
    assert set(measures) == {"course_loss_band", "course_grad_change", "course_beta_max", "probe_loss_band",
                             "probe_grad_change", "probe_beta"}
    for name, entries in measures.items():
        assert [e["params"]["bn"] for e in entries] == list(table.bn)
        assert [e["value"] for e in entries] == pytest.approx(list(table[name]))
        assert all(e["seed"] == 0 and "seed" not in e["params"] for e in entries)
        for e in entries:  # the runs behind the row, and only they, match its params
            behind = [r for r in study.runs if matches(r.as_strings(), e["params"])]
            lrs = [r.lr for r in behind]
            assert {r.bn for r in behind} == {e["params"]["bn"]}
            if name.startswith("course"):
                assert "lr" not in e["params"] and sorted(lrs) == [1e-3, 1e-2]
            else:  # the probes compare BN and no BN at one rate (probe_lr 1e-3 by default)
                assert e["params"]["lr"] == "0.001" and lrs == [1e-3]
            assert e["params"]["model"] == "mlp" and e["params"]["probe_every"] == "5"
    assert measures["course_loss_band"][0]["value"] > 0 and measures["probe_beta"][0]["value"] > 0
