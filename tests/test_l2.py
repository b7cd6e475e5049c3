"""The seeds' L2 term on the weights only (run parameter l2), against a direct computation of J's gradient."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnlab.models import create_model
from bnlab.runfolder import METRICS, read_json
from bnlab.train.l2 import add_l2_gradient, l2_penalty, l2_weights
from bnlab.train.run import execute_run

LAMBDA = 0.005


def quiet(_):
    pass


@pytest.mark.parametrize("name, shape, widths", [("mlp", (1, 8, 8), [16, 12]), ("cnn2", (1, 8, 8), None),
                                                 ("lenet5", (1, 28, 28), None)])
def test_gradient_is_that_of_the_cost_with_weights_only(name, shape, widths):
    torch.manual_seed(0)
    model = create_model(name, input_shape=shape, num_classes=10, bn="hidden", widths=widths).double()
    x, y = torch.randn(16, *shape, dtype=torch.float64), torch.randint(0, 10, (16,))
    weights = l2_weights(model)
    # the term covers every Linear weight matrix and Conv2d kernel, and nothing else
    expected = [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert [id(w) for w in weights] == [id(w) for w in expected] and len(weights) >= 2

    # J = cross-entropy + lambda * sum ||W||^2, differentiated by autograd
    model.zero_grad()
    cost = F.cross_entropy(model(x), y) + LAMBDA * sum(w.pow(2).sum() for w in expected)
    cost.backward()
    direct = {n: p.grad.clone() for n, p in model.named_parameters()}
    # bnlab: the loss's gradient, then 2 * lambda * W added to the weights' gradients
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters()}
    add_l2_gradient(weights, LAMBDA)
    assert not any(p.grad.requires_grad for p in model.parameters())  # plain tensors, outside autograd
    is_weight = {id(w) for w in weights}
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, direct[n], rtol=1e-12, atol=1e-14), n
        if id(p) not in is_weight:  # biases and BN's gamma and beta: not regularised
            assert torch.equal(p.grad, plain[n]), n
    assert l2_penalty(weights, LAMBDA) == pytest.approx(
        float(LAMBDA * sum(w.detach().pow(2).sum() for w in expected)), rel=1e-12)
    assert l2_penalty(weights, 0.0) == 0.0


def test_a_run_with_l2_trains_differently_and_records_its_penalty(tmp_path, digits_path, make_spec):
    plain = make_spec(optimizer="sgd", lr=0.1, epochs=1)
    with_l2 = make_spec(optimizer="sgd", lr=0.1, epochs=1, l2=LAMBDA)
    assert "_l2~0_" in plain.relative_dir() and "_l2~0.005_" in with_l2.relative_dir()
    for spec in (plain, with_l2):
        execute_run(spec, digits_path, tmp_path / spec.relative_dir(), log=quiet)
    m0, m1 = (read_json(tmp_path / s.relative_dir() / METRICS) for s in (plain, with_l2))
    assert m0["l2_penalty"] is None and m1["l2_penalty"] > 0
    # same data order and initial draw: the L2 term alone changes the trajectory
    assert m0["final_train_loss"] != m1["final_train_loss"]


def test_weight_decay_and_l2_are_different_objectives():
    """torch's weight_decay decays BN's gamma too; l2 leaves it alone."""
    torch.manual_seed(0)
    model = create_model("mlp", input_shape=(1, 8, 8), num_classes=10, bn="hidden", widths=[8]).double()
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm1d))
    with torch.no_grad():
        bn.weight.fill_(2.0)
    x, y = torch.randn(16, 1, 8, 8, dtype=torch.float64), torch.randint(0, 10, (16,))
    for decay, l2, moved in ((0.1, 0.0, True), (0.0, 0.1, False)):
        trial = create_model("mlp", input_shape=(1, 8, 8), num_classes=10, bn="hidden", widths=[8]).double()
        trial.load_state_dict(model.state_dict())
        opt = torch.optim.SGD(trial.parameters(), lr=1.0, weight_decay=decay)
        F.cross_entropy(trial(x), y).backward()
        gamma = next(m for m in trial.modules() if isinstance(m, nn.BatchNorm1d)).weight
        grad_before = gamma.grad.clone()
        add_l2_gradient(l2_weights(trial), l2)
        opt.step()
        # gamma's step is its loss gradient alone under l2; weight decay adds 0.1 * gamma to it
        decayed = not torch.allclose(gamma.detach(), 2.0 - grad_before)
        assert decayed == moved
