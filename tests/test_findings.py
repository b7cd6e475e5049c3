"""Findings sentences are built from the summary numbers, and only from them."""

import pandas as pd

from bnlab.analyses.summary import bn_comparison_findings, generic_findings
from bnlab.analyses.summary import summarize


def runs_table():
    rows = []
    for scale, none_acc, bn_acc in (("0.1", 0.80, 0.82), ("0.0001", 0.10, 0.79), ("0.001", 0.781, 0.783)):
        for seed in (0, 1):
            rows.append({"label": f"bn=none, init_scale={scale}", "bn": "none", "init_scale": scale, "seed": seed,
                         "status": "ok", "best_val_acc": none_acc + 0.002 * seed, "final_test_acc": none_acc,
                         "final_train_loss": 1.0, "final_val_loss": 1.0, "train_seconds": 1.0})
            rows.append({"label": f"bn=hidden, init_scale={scale}", "bn": "hidden", "init_scale": scale, "seed": seed,
                         "status": "ok", "best_val_acc": bn_acc + 0.002 * seed, "final_test_acc": bn_acc,
                         "final_train_loss": 1.0, "final_val_loss": 1.0, "train_seconds": 1.0})
    rows[-1]["status"] = "diverged"
    return pd.DataFrame(rows)


def test_summary_counts_diverged_and_excludes_them_from_means():
    summary = summarize(runs_table(), ["bn", "init_scale"])
    cell = summary[summary.label == "bn=hidden, init_scale=0.001"].iloc[0]
    assert cell["diverged"] == "1/2" and cell["best_val_acc_mean"] == 0.783


def test_bn_comparison_orders_by_gap_and_folds_small_ones():
    summary = summarize(runs_table(), ["bn", "init_scale"])
    sentences = bn_comparison_findings(summary, ["bn", "init_scale"])
    assert sentences[0].startswith("init_scale=0.0001: bn=hidden raised the best validation accuracy (curve subset) from 10.1% to 79.1%")
    assert "+69.0 points" in sentences[0]
    assert "init_scale=0.1" in sentences[1]
    assert sentences[-1].startswith("In 1 other setting BN changed")
    assert bn_comparison_findings(summary, ["init_scale"]) == []


def test_a_setting_is_named_by_its_no_bn_cell_where_the_study_names_cells():
    rows = []
    for bn, name, acc in (("none", "CNN", 0.5), ("hidden", "CNN + BN", 0.9)):
        for seed in (0, 1):
            rows.append({"label": f"{name}, lr=0.5", "bn": bn, "model": "cnn2", "widths": "default", "lr": "0.5",
                         "seed": seed, "status": "ok", "best_val_acc": acc, "final_test_acc": acc,
                         "final_train_loss": 1.0, "final_val_loss": 1.0, "train_seconds": 1.0})
    axes = ["bn", "model", "widths", "lr"]
    sentences = bn_comparison_findings(summarize(pd.DataFrame(rows), axes), axes)
    assert sentences[0].startswith("CNN, lr=0.5: bn=hidden raised the best validation accuracy (curve subset) from 50.0% to 90.0%")
    # unnamed cells keep their axes: the label would say no less
    for r in rows:
        r["label"] = f"bn={r['bn']}, model=cnn2, widths=default, lr=0.5"
    sentences = bn_comparison_findings(summarize(pd.DataFrame(rows), axes), axes)
    assert sentences[0].startswith("model=cnn2, widths=default, lr=0.5: bn=hidden raised")


def test_generic_findings_name_best_worst_and_divergence():
    summary = summarize(runs_table(), ["bn", "init_scale"])
    text = " ".join(generic_findings(summary))
    assert "Highest best validation accuracy (curve subset): bn=hidden, init_scale=0.1 with 82.1%" in text
    assert "Lowest: bn=none, init_scale=0.0001 with 10.1%" in text
    assert "bn=hidden, init_scale=0.001 diverged in 1/2 runs" in text


def test_run_table_keeps_an_epochs_axis(tmp_path, digits_path):
    """A grid over epochs must not be overwritten by metrics.json's epochs-trained figure."""
    from bnlab.analyses.collect import collect_runs
    from bnlab.config import build_plan
    from bnlab.train import execute_run

    cfg = {"data": {"val_size": 300},  # as digits_path: digits has 1437 training images
           "defaults": {"dataset": "digits", "widths": [16], "batch_size": 64},
           "studies": {"s": {"title": "t", "question": "q", "grid": {"epochs": [1, 2]}}}}
    study = build_plan(cfg).studies["s"]
    for run in study.runs:
        execute_run(run, digits_path, tmp_path / run.relative_dir(), log=lambda _: None)
    runs = collect_runs(study, tmp_path)
    assert runs.epochs.tolist() == ["1", "2"] and runs.epochs_trained.tolist() == [1.0, 2.0]


def split_runs(third_seed_acc):
    """The 2-conv CNN with BN at lr 0.5 on MNIST, as seed 002's settings gave it: two seeds trained, the third
    at `third_seed_acc`."""
    return pd.DataFrame([{"label": "bn=hidden, lr=0.5", "bn": "hidden", "lr": "0.5", "seed": seed, "dataset": "mnist",
                          "status": "ok", "best_val_acc": acc, "final_train_acc": acc, "final_test_acc": acc,
                          "final_train_loss": 0.1, "final_val_loss": 0.1, "train_seconds": 1.0}
                         for seed, acc in enumerate([0.966, 0.973, third_seed_acc])])


def test_seeds_split_between_trained_and_chance_are_given_per_seed_not_averaged():
    from bnlab.analyses.summary import split_findings, summary_table
    runs = split_runs(0.1135)
    summary = summarize(runs, ["bn", "lr"])
    row = summary.iloc[0]
    assert row["n_chance"] == 1
    cells = summary_table(summary, runs=runs)["rows"][0]["cells"]
    assert cells[4] == "96.6, 97.3; 11.3 (ended at chance)"  # test acc %: not the mean 68.4 ± 49.4
    assert split_findings(summary, runs) == [
        "bn=hidden, lr=0.5: the seeds split, 2 of 3 trained (test accuracy 96.6%, 97.3%) and 1 ended at chance "
        "(seed 2); its means are not a result of either kind."]
    # the third seed trained as well: a mean and its sd, no split
    all_trained = split_runs(0.970)
    trained = summarize(all_trained, ["bn", "lr"])
    assert trained.iloc[0]["n_chance"] == 0 and split_findings(trained, all_trained) == []
    assert summary_table(trained, runs=all_trained)["rows"][0]["cells"][4] == "97.0\u00a0±\u00a00.4"
