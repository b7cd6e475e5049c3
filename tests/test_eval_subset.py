"""Curve points on a fixed stratified subset; the whole validation and test sets at the end."""

import pytest
import torch

from bnlab import runfolder
from bnlab.data import load_prepared
from bnlab.data.subsets import stratified_subset
from bnlab.train import execute_run
from bnlab.train.evaluate import evaluate


def quiet(_line):
    pass


def test_stratified_subset_keeps_class_shares_exactly():
    labels = torch.tensor([0] * 500 + [1] * 300 + [2] * 200)
    idx = stratified_subset(labels, 100)
    assert len(idx) == 100 and len(set(idx.tolist())) == 100
    assert torch.equal(idx, idx.sort().values)
    assert torch.bincount(labels[idx]).tolist() == [50, 30, 20]
    # quotas with remainders: 7 of (5, 3, 2)/10 -> 3.5, 2.1, 1.4 -> 3 + 2 + 1 = 6, one more to class 0
    small = torch.tensor([0] * 5 + [1] * 3 + [2] * 2)
    assert torch.bincount(small[stratified_subset(small, 7)]).tolist() == [4, 2, 1]


def test_stratified_subset_is_fixed_and_seeded():
    labels = torch.randint(0, 10, (2000,), generator=torch.Generator().manual_seed(3))
    a, b = stratified_subset(labels, 300), stratified_subset(labels, 300)
    assert torch.equal(a, b)  # the same images for every run of a dataset
    assert not torch.equal(a, stratified_subset(labels, 300, seed=1))
    assert torch.equal(stratified_subset(labels, 0), torch.arange(2000))
    assert torch.equal(stratified_subset(labels, 5000), torch.arange(2000))


@pytest.mark.parametrize("eval_test", ["final", "every"])
def test_curve_points_use_the_subset_and_the_end_the_whole_splits(tmp_path, digits_path, make_spec, eval_test):
    spec = make_spec(eval_size=100, evals_per_epoch=2, eval_test=eval_test)
    metrics = execute_run(spec, digits_path, tmp_path, log=quiet)
    h = runfolder.load_run(tmp_path).history
    n_val, n_test = 300, 360  # digits: 300 held out of 1437, 360 test images
    assert set(h[h.split == "val"].images) == {100}
    assert list(h[h.split == "val_full"].images) == [n_val]
    assert list(h[h.split == "test_full"].images) == [n_test]
    if eval_test == "every":
        assert set(h[h.split == "test"].images) == {100}
    else:
        assert "test" not in set(h.split)
    full = h[h.split == "val_full"].iloc[0]
    assert metrics["final_val_acc"] == full.acc and metrics["final_test_acc"] == h[h.split == "test_full"].acc.iloc[0]
    assert metrics["best_val_acc"] == h[h.split == "val"].acc.max()  # a curve statistic
    assert metrics["eval_images"]["val"] == 100 and metrics["eval_images"]["val_full"] == n_val
    assert metrics["eval_seconds"] > 0
    # the whole-split row is a real evaluation of the whole validation set, not the subset's
    data = load_prepared(digits_path)
    assert len(data.val_idx) == n_val
    curve_last = h[h.split == "val"].iloc[-1]
    assert curve_last.step == full.step


def test_subset_curve_point_is_an_evaluation_of_those_images(digits_path):
    """evaluate() on the subset positions gives what a curve point records (same model, same images)."""
    data = load_prepared(digits_path)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    x = data.train_x[data.val_idx].float().div(255)
    y = data.train_y[data.val_idx]
    idx = stratified_subset(y, 100)
    loss_sub, acc_sub = evaluate(model, x[idx], y[idx])
    loss_all, acc_all = evaluate(model, x, y)
    assert loss_sub != loss_all  # a different set of images, a different number
    quota = torch.bincount(y, minlength=10).double() * 100 / len(y)
    assert (torch.bincount(y[idx], minlength=10).double() - quota).abs().max() < 1  # each class its share


def test_the_summary_caption_says_which_images_each_column_used(make_spec):
    from bnlab.analyses.summary import evaluation_note

    assert "subset of 1,000 validation images" in evaluation_note([make_spec(eval_size=1000)])
    assert "2,000 or 500" not in evaluation_note([make_spec(eval_size=500), make_spec(eval_size=2000)])
    assert "500 or 2,000 validation images" in evaluation_note([make_spec(eval_size=500), make_spec(eval_size=2000)])
    assert evaluation_note([make_spec(eval_size=0)]) == "Every column is computed on the whole validation and test sets."
