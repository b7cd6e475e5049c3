"""Losses and optimizers: bnlab's own SGD against torch's on the same steps, the optimizers a run may name, label smoothing."""

import pytest
import torch
import torch.nn.functional as F

from bnlab.models import create_model
from bnlab.runfolder import METRICS, read_json
from bnlab.train.optimizers import BnlabSGD, make_optimizer
from bnlab.train.run import execute_run


def quiet(_):
    pass


@pytest.mark.parametrize("momentum, weight_decay", [(0.0, 0.0), (0.9, 0.0), (0.9, 5e-4), (0.5, 1e-2)])
def test_bnlab_sgd_matches_torch_sgd_step_for_step(momentum, weight_decay):
    torch.manual_seed(0)
    ours = create_model("cnn2", input_shape=(1, 8, 8), num_classes=10, bn="hidden").double()
    theirs = create_model("cnn2", input_shape=(1, 8, 8), num_classes=10, bn="hidden").double()
    theirs.load_state_dict(ours.state_dict())
    opt_ours = BnlabSGD(ours.parameters(), lr=0.1, momentum=momentum, weight_decay=weight_decay)
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=momentum, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(1)
    for step in range(20):
        x = torch.randn(16, 1, 8, 8, generator=gen, dtype=torch.float64)
        y = torch.randint(0, 10, (16,), generator=gen)
        if step == 10:  # a schedule changing lr mid-run, as lr_policy does through param_groups
            for opt in (opt_ours, opt_theirs):
                opt.param_groups[0]["lr"] = 0.03
        for model, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters()):
        assert torch.allclose(a, b, rtol=0, atol=1e-12), name
    moved = create_model("cnn2", input_shape=(1, 8, 8), num_classes=10, bn="hidden").double()
    assert not all(torch.allclose(a, b) for a, b in zip(ours.parameters(), moved.parameters()))


def test_bnlab_sgd_state_survives_a_checkpoint():
    """Resume: the velocity is optimizer state, so load_state_dict restores it like torch's."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3).double()
    opt = BnlabSGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 4, dtype=torch.float64)).sum().backward()
    opt.step()
    again = BnlabSGD(model.parameters(), lr=0.1, momentum=0.9)
    again.load_state_dict(opt.state_dict())
    assert torch.equal(again.state[model.weight]["velocity"], opt.state[model.weight]["velocity"])


def test_run_optimizers(make_spec, tmp_path, digits_path):
    for name, kind in (("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD),
                       ("bnlab_sgd", BnlabSGD)):
        spec = make_spec(optimizer=name, weight_decay=1e-4)
        assert type(make_optimizer(spec, torch.nn.Linear(2, 2).parameters())) is kind
        assert (spec.momentum == "na") == (name in ("adam", "adamw"))
    # one short real run with bnlab's SGD, and torch's with the same settings: the same training
    runs = [make_spec(optimizer=o, lr=0.05, momentum=0.9, epochs=1) for o in ("bnlab_sgd", "sgd")]
    for spec in runs:
        execute_run(spec, digits_path, tmp_path / spec.relative_dir(), log=quiet)
    a, b = (read_json(tmp_path / s.relative_dir() / METRICS) for s in runs)
    assert a["final_train_loss"] == pytest.approx(b["final_train_loss"], rel=1e-4)
    assert a["steps"] == b["steps"]


def test_label_smoothing_is_the_training_loss(make_spec, tmp_path, digits_path):
    """With targets smoothed by e, no model's loss can go below the smoothed target's entropy."""
    import math

    import pandas as pd

    e, k = 0.2, 10
    floor = -((1 - e + e / k) * math.log(1 - e + e / k) + (k - 1) * (e / k) * math.log(e / k))
    plain, smooth = make_spec(epochs=3, lr=0.01), make_spec(epochs=3, lr=0.01, label_smoothing=e)
    assert "_ls~0.2/" in smooth.relative_dir() and "_ls~0/" in plain.relative_dir()
    for spec in (plain, smooth):
        execute_run(spec, digits_path, tmp_path / spec.relative_dir(), log=quiet)
    steps = {s.label_smoothing: pd.read_parquet(tmp_path / s.relative_dir() / "steps.parquet") for s in (plain, smooth)}
    assert steps[e]["loss"].min() >= floor - 1e-6  # the smoothed cross-entropy was trained and recorded
    assert steps[0.0]["loss"].min() < floor  # plain cross-entropy goes below it on the same data
    m = read_json(tmp_path / smooth.relative_dir() / METRICS)
    assert m["final_val_loss"] < floor  # evaluation stays plain cross-entropy
