"""The best-network search (seed 004 section 1): candidates, Pareto front, the choice within noise, the weights
a run leaves, and the look inside the first conv layer."""

import math
import shutil

import pandas as pd
import pytest
import torch

from bnlab import runfolder
from bnlab.analyses.best_net import (against_base, candidate_table, choose_best, first_conv_and_maps,
                                     map_stats, pareto_front, run_spread, structure)
from bnlab.analyses.consistency import check_study
from bnlab.analyses.runner import run_analysis
from bnlab.config import build_plan
from bnlab.data import load_prepared
from bnlab.models import create_model
from bnlab.train import execute_run
from bnlab.train.evaluate import evaluate
from bnlab.train.tensors import device_splits


def quiet(_):
    pass


def cands(rows):
    frame = pd.DataFrame(rows, columns=["label", "parameters", "test_acc", "val_acc", "ok"])
    frame["val_sd"] = math.nan
    return frame


def test_the_pareto_front_keeps_what_no_smaller_candidate_beats():
    c = cands([["a", 100, 0.80, 0.8, 1], ["b", 200, 0.85, 0.8, 1], ["c", 300, 0.84, 0.8, 1],
               ["d", 400, 0.90, 0.8, 1], ["e", 100, 0.70, 0.8, 1], ["f", 50, math.nan, 0.8, 1]])
    assert pareto_front(c) == ["a", "b", "d"]  # c is beaten by the smaller b, e by a of equal size; f has no score
    # the other way round: if the largest were also the least accurate, it would leave the front
    c.loc[c.label == "d", "test_acc"] = 0.5
    assert pareto_front(c) == ["a", "b"]


def test_the_best_is_singled_out_only_beyond_two_standard_errors():
    c = cands([["base", 100, 0.85, 0.860, 1], ["tanh", 100, 0.84, 0.855, 1], ["sigmoid", 100, 0.70, 0.70, 1]])
    tight = choose_best(c, sd=0.001)  # se of a difference = 0.0014: 0.005 apart is beyond two
    assert tight == {"label": "base", "close": []}
    loose = choose_best(c, sd=0.01)  # se 0.014: tanh is within two, sigmoid far below
    assert loose == {"label": "base", "close": ["tanh"]}


def test_each_choice_is_judged_against_the_base_beyond_noise_or_not():
    c = cands([["base", 100, 0.85, 0.860, 1], ["tanh", 100, 0.84, 0.850, 1], ["l2", 100, 0.86, 0.875, 1]])
    text = against_base(c, sd=0.002)[0]  # two standard errors of a difference: 0.57 points
    assert "l2 +1.5 (better); tanh -1.0 (worse)" in text and "1 choice(s) beat the base" in text
    text = against_base(c, sd=0.01)[0]  # 2.8 points: both within noise
    assert "l2 +1.5 (within noise); tanh -1.0 (within noise)" in text and "0 choice(s) beat" in text
    assert against_base(c[c.label != "base"], sd=0.01) == []  # no base setting, nothing to compare with


def test_the_spread_of_a_run_is_pooled_over_seeds_or_the_binomial_error():
    c = cands([["a", 1, 0.8, 0.80, 2], ["b", 1, 0.8, 0.90, 3], ["c", 1, 0.8, 0.85, 1]])
    c["val_sd"] = [0.01, 0.02, math.nan]
    sd, source = run_spread(c, val_size=1000)
    assert sd == pytest.approx(math.sqrt((1 * 0.01 ** 2 + 2 * 0.02 ** 2) / 3))
    assert "2 candidates" in source
    c["ok"], c["val_sd"] = 1, math.nan  # one seed each: the validation set's binomial error
    sd, source = run_spread(c, val_size=1000)
    assert sd == pytest.approx(math.sqrt(0.9 * 0.1 / 1000)) and "binomial" in source


def _study(**study):
    cfg = {"data": {"val_size": 300},
           "defaults": {"dataset": "digits", "model": "cnn", "widths": [4, 8, 8, 16, 16], "epochs": 2,
                        "batch_size": 64, "evals_per_epoch": 1},
           "studies": {"s": {"title": "t", "question": "q", "source": "s", "analyses": ["best_net"], **study}}}
    return build_plan(cfg).studies["s"]


def test_a_search_over_many_axes_names_its_runs_by_what_differs_from_the_base():
    grid = [{"activation": ["relu", "tanh"]}, {"bn": ["none"]}, {"widths": [[2, 4, 4, 8, 8]]},
            {"optimizer": ["bnlab_sgd"], "momentum": [0.9], "lr": [0.05]}, {"l2": [1e-3]}]
    study = _study(fixed={"bn": "hidden"}, grid=grid, seeds=[0, 1])
    assert len(study.axes) > 6
    names = [study.label(r) for r in study.runs if r.seed == 0]
    assert names == ["base", "activation=tanh", "bn=none", "widths=2x4x4x8x8",
                     "optimizer=bnlab_sgd, lr=0.05, momentum=0.9", "l2=0.001"]
    base = next(r for r in study.runs if study.label(r) == "base")
    assert structure(base.as_strings()).startswith(
        "cnn (widths 4-8-8-16-16), relu, batch norm after every hidden layer, no dropout; cross-entropy; adam, lr 0.001")
    # a study over few axes keeps the full names (a factorial grid reads better so)
    few = _study(grid={"activation": ["relu", "tanh"], "bn": ["none", "hidden"]})
    assert study.label(study.runs[0]) == "base" and few.label(few.runs[0]) == "bn=none, activation=relu"


def test_first_conv_maps_are_after_the_activation_and_an_mlp_has_none():
    torch.manual_seed(0)
    model = create_model("cnn", input_shape=(1, 8, 8), num_classes=10, bn="hidden", widths=[4, 8, 8, 16, 16])
    filters, maps = first_conv_and_maps(model, torch.randn(1, 8, 8))
    assert filters.shape == (4, 1, 3, 3) and maps.shape == (4, 8, 8)
    assert maps.min() >= 0  # ReLU's output, after BN
    filters3 = torch.tensor([3.0, 4.0, 0.0, 0.0]).repeat(3, 1) * torch.tensor([[1.0], [2.0], [0.5]])
    stats = map_stats(torch.zeros(3, 2, 2), filters3)
    assert stats["dead"] == 3 and (stats["norm_min"], stats["norm_max"]) == (2.5, 10.0)
    assert map_stats(torch.ones(3, 2, 2), filters3)["dead"] == 0
    mlp = create_model("mlp", input_shape=(1, 8, 8), num_classes=10, widths=[8])
    assert first_conv_and_maps(mlp, torch.randn(1, 8, 8)) is None


def test_a_run_leaves_its_final_weights_and_the_section_looks_inside(tmp_path, digits_path):
    study = _study(fixed={"bn": "hidden"}, grid=[{"activation": ["relu", "sigmoid"]}, {"bn": ["none"]}], seeds=[0])
    results = tmp_path / "results"
    for run in study.runs:
        execute_run(run, digits_path, results / "runs" / run.relative_dir(), log=quiet)
    # the weights are the final model: loaded into a fresh one they give the run's own test accuracy
    run = study.runs[0]
    loaded = runfolder.load_run(results / "runs" / run.relative_dir())
    data = load_prepared(digits_path)
    model = create_model("cnn", input_shape=data.input_shape, num_classes=10, bn="hidden", widths=[4, 8, 8, 16, 16])
    model.load_state_dict(loaded.weights())
    splits = device_splits(data, train_subset=0, normalize=True, device="cpu")
    _, acc = evaluate(model, splits.test_x, splits.test_y, 128)
    assert acc == pytest.approx(loaded.metrics["final_test_acc"], abs=1e-9)

    (results / "data").mkdir()
    shutil.copy(digits_path, results / "data" / "digits.pt")
    frag = run_analysis(study, "best_net", results=results, extra={"val_size": 300})
    table = pd.read_csv(results / "studies" / "s" / "best_net" / "candidates.csv")
    assert sorted(table.label) == sorted(study.label(r) for r in study.runs)
    assert table.best.sum() == 1 and table.pareto.any()
    assert table.loc[table.best, "val_acc"].item() == table.val_acc.max()
    inside = pd.read_csv(results / "studies" / "s" / "best_net" / "inside.csv")
    assert set(inside.kind) == {"with BN", "without BN"}
    no_bn = next(r for r in study.runs if r.bn == "none")
    assert inside.loc[inside.kind == "without BN", "label"].item() == study.label(no_bn)
    assert [f["file"] for f in frag["figures"]] == ["tradeoff.png", "inside.png"]
    text = " ".join(frag["findings"])
    best = table[table.best].iloc[0]
    assert f"the best on final validation accuracy (whole split) is '{best.label}'" in text
    assert f"Its test error is {100 * (1 - best.test_acc):.1f}%" in text
    assert "Pareto front" in text and "feature maps are zero everywhere" in text
    assert len(frag["tables"][0]["rows"]) == 3
    # every candidate's stated accuracies are the study's facts; one fact changed is found
    folder = results / "studies" / "s"
    run_analysis(study, "summary", results=results)  # the facts table
    checked, problems = check_study(folder)
    assert problems == [] and checked >= 2 * len(table)
    facts = pd.read_csv(folder / "summary" / "facts.csv")
    facts.loc[(facts.measure == "final_val_acc") & (facts.cell == best.label), "value"] = 0.01
    facts.to_csv(folder / "summary" / "facts.csv", index=False)
    assert any(p.startswith(f"best_net {best.label} val_acc") for p in check_study(folder)[1])


def test_a_diverged_candidate_keeps_a_marked_row_and_leaves_the_choice():
    from bnlab.analyses.best_net import findings

    runs = pd.DataFrame({
        "label": ["base", "base", "lr=10", "lr=10"], "status": ["ok", "ok", "diverged", "diverged"],
        "final_val_acc": [0.85, 0.86, math.nan, math.nan], "final_test_acc": [0.84, 0.85, math.nan, math.nan],
        "parameters": [100, 100, 100, 100], "train_seconds": [1.0, 1.2, 0.3, 0.4], "steps": [50, 50, 7, 9],
        "run_dir": ["a", "b", "c", "d"]})
    c = candidate_table(runs)
    diverged = c[c.label == "lr=10"].iloc[0]
    assert (diverged.diverged, diverged.ok) == (2, 0) and math.isnan(diverged.val_acc)
    c["pareto"] = c.label.isin(pareto_front(c))
    c["best"] = c.label == choose_best(c, 0.01)["label"]
    assert list(c[c.best].label) == ["base"] and list(c[c.pareto].label) == ["base"]
    text = " ".join(findings(c, 0.01, "seeds", "a net", pd.DataFrame(columns=["kind"])))
    assert "Diverged: 'lr=10' (2 of 2 runs)" in text
