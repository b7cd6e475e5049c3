"""Landscape section numbers and sentences (bnlab.landscape.summary)."""

import pandas as pd

from bnlab.landscape.summary import landscape_findings, landscape_table


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
