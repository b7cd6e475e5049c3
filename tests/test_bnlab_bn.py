"""bnlab's own BN (models/bnlab_bn.py): analytic backward, equality with torch's BatchNorm, drop-in in the models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bnlab.models import NORM_FACTORIES, bn_layers, create_model
from bnlab.models.bnlab_bn import BatchNormFunction, BnlabBatchNorm1d, BnlabBatchNorm2d, RowsLayout, channel_layout

F64 = torch.float64
# (ours, torch's, input shape): (N, C), (N, C, L), (N, C, H, W)
# (ours, torch's, input shape, layout): (N, C), (N, C, L), (N, C, H, W) planar and channels-last (the
# channels-last one is summed on its memory rows: bnlab_bn.RowsLayout)
CL = torch.channels_last
PAIRS = [
    (BnlabBatchNorm1d, nn.BatchNorm1d, (6, 4), torch.contiguous_format),
    (BnlabBatchNorm1d, nn.BatchNorm1d, (5, 4, 3), torch.contiguous_format),
    (BnlabBatchNorm2d, nn.BatchNorm2d, (3, 4, 3, 2), torch.contiguous_format),
    (BnlabBatchNorm2d, nn.BatchNorm2d, (3, 4, 3, 2), CL),
]
IDS = ["1d-NC", "1d-NCL", "2d-NCHW", "2d-NHWC"]


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors; the machine is shared
    yield
    torch.set_num_threads(old)


def make_pair(ours_cls, ref_cls, c, momentum=0.1):
    ours, ref = ours_cls(c, momentum=momentum).to(F64), ref_cls(c, momentum=momentum).to(F64)
    with torch.no_grad():  # gamma != 1, beta != 0, so a missing gamma factor cannot hide
        ours.weight.uniform_(0.5, 1.5)
        ours.bias.normal_()
    ref.load_state_dict(ours.state_dict())  # same keys as torch's: state dicts interchange
    return ours, ref


def batch(shape, fmt=torch.contiguous_format, gen_scale=3.0):
    c = shape[1]
    view = (1, c) + (1,) * (len(shape) - 2)
    x = torch.randn(shape, dtype=F64) * (torch.rand(c, dtype=F64) * 2 + 0.5).view(view) \
        + (torch.randn(c, dtype=F64) * gen_scale).view(view)
    return x.contiguous(memory_format=fmt)


@pytest.mark.parametrize("shape,fmt", [((5, 3), None), ((4, 3, 2), None), ((3, 2, 3, 3), None), ((3, 2, 3, 3), CL)],
                         ids=IDS)
def test_autograd_gradcheck_of_function(shape, fmt):
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=F64)
    if fmt is not None:
        x = x.contiguous(memory_format=fmt)
        assert isinstance(channel_layout(x), RowsLayout)
    x.requires_grad_()
    w = (torch.rand(shape[1], dtype=F64) + 0.5).requires_grad_()
    b = torch.randn(shape[1], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: BatchNormFunction.apply(x, w, b, 1e-5)[0], (x, w, b))


def test_function_returns_batch_mean_and_biased_variance():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 2, 2, dtype=F64)
    y, mean, var = BatchNormFunction.apply(x, torch.ones(3, dtype=F64), torch.zeros(3, dtype=F64), 1e-5)
    torch.testing.assert_close(mean, x.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(var, x.var(dim=(0, 2, 3), unbiased=False))
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=F64))


@pytest.mark.parametrize("momentum", [0.1, None], ids=["momentum0.1", "cumulative"])
@pytest.mark.parametrize("ours_cls,ref_cls,shape,fmt", PAIRS, ids=IDS)
def test_matches_torch_train_running_stats_and_eval(ours_cls, ref_cls, shape, fmt, momentum):
    torch.manual_seed(0)
    ours, ref = make_pair(ours_cls, ref_cls, shape[1], momentum)
    for _ in range(4):
        x, g = batch(shape, fmt), torch.randn(shape, dtype=F64)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ours.zero_grad(), ref.zero_grad()
        ya, yb = ours(xa), ref(xb)
        assert ya.is_contiguous(memory_format=fmt)
        (ya * g).sum().backward()
        (yb * g).sum().backward()
        torch.testing.assert_close(ya, yb, rtol=0, atol=1e-12)
        torch.testing.assert_close(xa.grad, xb.grad, rtol=0, atol=1e-12)
        torch.testing.assert_close(ours.weight.grad, ref.weight.grad, rtol=0, atol=1e-12)
        torch.testing.assert_close(ours.bias.grad, ref.bias.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(ours.running_mean, ref.running_mean, rtol=0, atol=1e-13)
    torch.testing.assert_close(ours.running_var, ref.running_var, rtol=0, atol=1e-13)
    assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked) == 4
    ours.eval(), ref.eval()
    x = batch(shape, fmt)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ours(xa), ref(xb)
    torch.testing.assert_close(ya, yb, rtol=0, atol=1e-12)
    ya.sum().backward(), yb.sum().backward()  # eval mode differentiates through plain ops
    torch.testing.assert_close(xa.grad, xb.grad, rtol=0, atol=1e-12)
    assert int(ours.num_batches_tracked) == 4  # eval does not count batches


def test_drop_in_attributes_and_errors():
    bn = BnlabBatchNorm2d(5)
    ref = nn.BatchNorm2d(5)
    assert list(bn.state_dict()) == list(ref.state_dict())
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    assert bn.eps == ref.eps and bn.momentum == ref.momentum
    torch.testing.assert_close(bn.weight, torch.ones(5)), torch.testing.assert_close(bn.bias, torch.zeros(5))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        BnlabBatchNorm1d(3)(torch.randn(1, 3))
    BnlabBatchNorm1d(3).eval()(torch.randn(1, 3))  # fine in eval, as torch
    with pytest.raises(ValueError, match="4D"):
        bn(torch.randn(4, 5))
    with pytest.raises(ValueError, match="channels"):
        bn(torch.randn(2, 4, 3, 3))


def test_float32_close_to_torch():
    torch.manual_seed(0)
    ours, ref = BnlabBatchNorm2d(4), nn.BatchNorm2d(4)
    x = batch((8, 4, 5, 5)).float()
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.running_var, ref.running_var)


def test_registered_as_norm_factory():
    assert isinstance(NORM_FACTORIES["bnlab"](7, 1), BnlabBatchNorm1d)
    assert isinstance(NORM_FACTORIES["bnlab"](7, 2), BnlabBatchNorm2d)


@pytest.mark.parametrize("name,shape,widths", [
    ("mlp", (1, 8, 8), [16, 16]),
    ("cnn", (1, 8, 8), [4, 4, 4, 8, 8]),
    ("lenet5", (1, 28, 28), None),
])
@pytest.mark.parametrize("bn", ["hidden", "input+hidden"])
def test_create_model_with_bnlab_bn(name, shape, widths, bn):
    kwargs = dict(input_shape=shape, num_classes=5, bn=bn, widths=widths)
    torch.manual_seed(0)
    ours = create_model(name, bn_impl="bnlab", **kwargs)
    torch.manual_seed(0)
    ref = create_model(name, bn_impl="torch", **kwargs)
    found, ref_found = bn_layers(ours), bn_layers(ref)
    assert len(found) > 0
    assert [(n, k) for n, _, k in found] == [(n, k) for n, _, k in ref_found]
    assert all(isinstance(m, (BnlabBatchNorm1d, BnlabBatchNorm2d)) for _, m, _ in found)
    # the same kind of BN in each place: 1d where torch's is 1d, 2d where torch's is (a RowsBatchNorm2d)
    assert all(isinstance(m, BnlabBatchNorm1d) == isinstance(r, nn.BatchNorm1d)
               for (_, m, _), (_, r, _) in zip(found, ref_found))
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(4, *shape)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-4, atol=1e-5)


def test_too_small_input_still_refused_with_bnlab_bn():
    with pytest.raises(ValueError, match=r"lenet5.*12x12"):
        create_model("lenet5", input_shape=(1, 8, 8), num_classes=10, bn="hidden", bn_impl="bnlab")
    with pytest.raises(ValueError, match=r"cnn.*8x8"):
        create_model("cnn", input_shape=(1, 4, 4), num_classes=10, bn="hidden", bn_impl="bnlab")


@pytest.mark.parametrize("name,shape,widths", [("mlp", (1, 6, 6), [12, 12]), ("cnn2", (1, 8, 8), [3, 3])])
def test_short_training_same_losses_as_torch_bn(name, shape, widths):
    """Same init, same batches, SGD: the two implementations give the same losses in float64."""
    torch.manual_seed(0)
    ref = create_model(name, input_shape=shape, num_classes=4, bn="input+hidden", widths=widths).double()
    ours = create_model(name, input_shape=shape, num_classes=4, bn="input+hidden", widths=widths,
                        bn_impl="bnlab").double()
    ours.load_state_dict(ref.state_dict())
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, *shape, dtype=F64, generator=gen), torch.randint(0, 4, (8,), generator=gen))
               for _ in range(6)]
    losses = {}
    for key, model in (("torch", ref), ("bnlab", ours)):
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        model.train()
        out = []
        for x, y in batches:
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            out.append(loss.item())
        model.eval()
        out.append(nn.functional.cross_entropy(model(batches[0][0]), batches[0][1]).item())
        losses[key] = out
    assert losses["torch"][0] != losses["torch"][-2]  # it did train
    assert losses["bnlab"] == pytest.approx(losses["torch"], rel=0, abs=1e-10)
    for (_, a), (_, b) in zip(ours.state_dict().items(), ref.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
