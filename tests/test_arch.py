"""Architecture accounting (seed 003 problem 3) against independent figures and closed forms."""

import json
import math

import pytest
import torch
from torch import nn

from bnlab.analyses.architecture import (
    ALEXNET_INPUT,
    CIFAR_INPUT,
    VGG_INPUT,
    alexnet_paper,
    build_section,
    inception_summary,
    layer_table,
    receptive_field_formula,
    receptive_field_probe,
    torchvision_alexnet,
    torchvision_vgg19,
    totals,
    vgg19,
    vgg19_seed_table,
    vgg_a_cifar,
)
from bnlab.analyses.architecture.fmt import short, thousands


def _n_params(model: nn.Module, *, biases: bool = True) -> int:
    return sum(p.numel() for name, p in model.named_parameters() if biases or not name.endswith("bias"))


# ---------------------------------------------------------------- accounting on a small model worked by hand

def test_layer_table_small_model_by_hand():
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, groups=2),  # (4, 5, 5): weights 4*(1*3*3) = 36, biases 4
        nn.BatchNorm2d(4),                        # gamma 4, beta 4
        nn.ReLU(),
        nn.MaxPool2d(2),                          # (4, 2, 2)
        nn.Flatten(),
        nn.Linear(16, 3),                         # 48 + 3
    )
    model.train()
    df = layer_table(model, (2, 5, 5))
    assert list(df["type"]) == ["Input", "Conv2d", "BatchNorm2d", "MaxPool2d", "Linear"]
    assert list(df["output_shape"]) == [(2, 5, 5), (4, 5, 5), (4, 5, 5), (4, 2, 2), (3,)]
    assert list(df["activations"]) == [50, 100, 100, 16, 3]
    assert list(df["weights"]) == [0, 36, 4, 0, 48]
    assert list(df["params"]) == [0, 40, 8, 0, 51]
    # conv: 5*5*4 outputs * (2/2)*3*3 each; linear 16*3
    assert list(df["macs"]) == [0, 5 * 5 * 4 * 9, 0, 0, 48]
    assert df["calc"][1] == "(3*3*1)*4 + 4"
    assert totals(df) == {"weights": 88, "biases": 11, "params": 99, "activations": 269,
                          "macs": 948, "layers": 3}
    assert totals(df)["params"] == _n_params(model)
    assert model.training and model[1].training  # train/eval flags restored
    full = layer_table(model, (2, 5, 5), include_all=True, include_input=False)
    assert list(full["type"]) == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]


# ---------------------------------------------------------------- totals against independent figures

def test_torchvision_alexnet_total():
    model = torchvision_alexnet()
    t = totals(layer_table(model, (3, 224, 224)))
    assert t["params"] == 61_100_840 == _n_params(model)
    assert t["weights"] == _n_params(model, biases=False)


def test_torchvision_vgg19_total_and_ours():
    tv = torchvision_vgg19()
    assert totals(layer_table(tv, VGG_INPUT))["params"] == 143_667_240 == _n_params(tv)
    ours = vgg19()
    t = totals(layer_table(ours, VGG_INPUT))
    assert t["params"] == 143_667_240
    assert t["macs"] == totals(layer_table(tv, VGG_INPUT))["macs"]


def test_vgg19_without_biases_is_sum_of_weight_tensors():
    weights = sum(m.weight.numel() for m in vgg19().modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    no_bias = vgg19(bias=False)
    assert totals(layer_table(no_bias, VGG_INPUT))["weights"] == weights == _n_params(no_bias) == 143_652_544
    assert totals(layer_table(vgg19(), VGG_INPUT))["weights"] == weights


def test_vgg_a_cifar():
    model = vgg_a_cifar()
    assert totals(layer_table(model, CIFAR_INPUT))["params"] == 9_750_922 == _n_params(model)


def _alexnet_closed_form(groups: int) -> int:
    # (kH*kW*C_in/groups)*C_out + C_out per conv, in*out + out per FC; paper groups conv2, conv4, conv5
    convs = [(11, 3, 96, 1), (5, 96, 256, groups), (3, 256, 384, 1), (3, 384, 384, groups), (3, 384, 256, groups)]
    fcs = [(6 * 6 * 256, 4096), (4096, 4096), (4096, 1000)]
    return sum(k * k * (c_in // g) * c_out + c_out for k, c_in, c_out, g in convs) + sum(i * o + o for i, o in fcs)


@pytest.mark.parametrize("groups, expected", [(2, 60_965_224), (1, 62_378_344)])
def test_alexnet_paper_total(groups, expected):
    model = alexnet_paper(groups=groups)
    df = layer_table(model, ALEXNET_INPUT)
    assert totals(df)["params"] == expected == _alexnet_closed_form(groups) == _n_params(model)
    shapes = dict(zip(df["name"], df["output_shape"]))
    assert shapes["conv1"] == (96, 55, 55) and shapes["pool5"] == (256, 6, 6)
    assert df.set_index("name")["params"]["fc6"] == 9216 * 4096 + 4096


def test_alexnet_224_with_padding_same_geometry():
    df = layer_table(alexnet_paper(conv1_padding=2), (3, 224, 224))
    assert df.set_index("name")["output_shape"]["conv1"] == (96, 55, 55)
    assert totals(df)["params"] == 60_965_224


# ---------------------------------------------------------------- the seed's VGG19 table

SEED_CELLS = [  # (row index, layer, activations, short, weights) as given in the seed
    (0, "Input", 224 * 224 * 3, "150K", 0),
    (1, "CONV3-64", 224 * 224 * 64, "3.2M", 1_728),
    (2, "CONV3-64", 224 * 224 * 64, "3.2M", 36_864),
    (3, "POOL2", 112 * 112 * 64, "800K", 0),
    (6, "POOL2", 56 * 56 * 128, "400K", 0),
    (8, "CONV3-256", 56 * 56 * 256, "800K", 589_824),
    (12, "CONV3-512", 28 * 28 * 512, "400K", 1_179_648),
    (14, "CONV3-512", 28 * 28 * 512, "400K", None),
    (23, "FC 4096", 4096, "4096", 16_777_216),
]


@pytest.fixture(scope="module")
def seed_table():
    return vgg19_seed_table()


@pytest.mark.parametrize("row, layer, activations, short_form, weights", SEED_CELLS)
def test_vgg19_seed_cells(seed_table, row, layer, activations, short_form, weights):
    r = seed_table.iloc[row]
    assert r["layer"] == layer
    assert r["activations"] == activations
    assert r["activations_short"] == short_form
    if weights is not None:
        assert r["weights"] == weights


def test_vgg19_seed_table_shape_and_total(seed_table):
    layers = list(seed_table["layer"])
    assert layers[0] == "Input" and layers[-4:] == ["FC 4096", "FC 4096", "FC 1000", "TOTAL"]
    assert layers.count("CONV3-64") == 2 and layers.count("CONV3-128") == 2
    assert layers.count("CONV3-256") == 4 and layers.count("CONV3-512") == 8 and layers.count("POOL2") == 5
    body, total = seed_table.iloc[:-1], seed_table.iloc[-1]
    assert total["weights"] == body["weights"].sum() == 143_652_544
    assert total["activations"] == body["activations"].sum()
    assert seed_table[seed_table.layer == "POOL2"]["weights"].eq(0).all()


def test_short_and_thousands():
    assert [short(n) for n in (150_528, 3_211_264, 802_816, 401_408, 4096)] == ["150K", "3.2M", "800K", "400K", "4096"]
    assert thousands(16_777_216) == "16,777,216"


# ---------------------------------------------------------------- receptive field

@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("f", [3, 5, 7])
def test_receptive_field_formula_equals_probe(n, f):
    assert receptive_field_formula(n, f) == receptive_field_probe(n, f) == n * (f - 1) + 1


def test_three_stacked_5x5():
    assert receptive_field_formula(3, 5) == receptive_field_probe(3, 5) == 13


# ---------------------------------------------------------------- inception

def _closed_form_inception(h: int, w: int, c: int) -> tuple[int, int, int, int]:
    """(naive channels, naive multiplies, reduction channels, reduction multiplies), written out."""
    def conv(k, c_in, c_out):  # one multiply per weight per output position
        return h * w * c_out * k * k * c_in

    naive_channels = 128 + 192 + 96 + c  # the pool passes all c channels on
    naive = conv(1, c, 128) + conv(3, c, 192) + conv(5, c, 96)
    red_channels = 128 + 192 + 96 + 64
    red = conv(1, c, 128) + conv(1, c, 64) + conv(3, 64, 192) + conv(1, c, 64) + conv(5, 64, 96) + conv(1, c, 64)
    return naive_channels, naive, red_channels, red


def test_inception_32x32x256():
    s = inception_summary((256, 32, 32))
    naive_c, naive, red_c, red = _closed_form_inception(32, 32, 256)
    assert s["naive"]["output_shape"] == (naive_c, 32, 32) == (672, 32, 32)
    assert s["reduction"]["output_shape"] == (red_c, 32, 32) == (480, 32, 32)
    assert s["naive"]["macs"] == naive == 1_115_684_864
    assert s["reduction"]["macs"] == red == 354_418_688
    assert s["saving_macs"] == naive - red
    assert s["saving_ratio"] == pytest.approx(naive / red)


def test_inception_28x28_cross_check():
    s = inception_summary((256, 28, 28))
    assert s["naive"]["output_shape"] == (672, 28, 28) and s["reduction"]["output_shape"] == (480, 28, 28)
    assert round(s["naive"]["macs"] / 1e6) == 854
    assert round(s["reduction"]["macs"] / 1e6) == 271


# ---------------------------------------------------------------- the report section

def test_build_section(tmp_path):
    used = [("mlp", (1, 28, 28)), ("cnn", (1, 28, 28)), ("lenet5", (1, 28, 28))]
    build_section(used, tmp_path)
    data = json.loads((tmp_path / "section.json").read_text())
    assert set(data) == {"tables", "figures", "findings", "background", "answers"} and data["figures"] == []
    for table in data["tables"]:
        assert table["caption"] and table["rows"]
        assert all(len(row) == len(table["header"]) for row in table["rows"])
        assert all(isinstance(cell, str) for row in table["rows"] for cell in row)
    captions = [t["caption"] for t in data["tables"]]
    assert any(c.startswith("Model totals") for c in captions)
    assert any(c.startswith("AlexNet parameters per layer") for c in captions)
    assert any(c.startswith("Seed Table 1") for c in captions)
    assert any(c.startswith("Receptive field") for c in captions)
    assert any(c.startswith("Inception modules") for c in captions)

    totals_rows = {row[0].split(" ")[0]: row for row in data["tables"][0]["rows"]}
    assert totals_rows["lenet5"][2] == "61,706"       # LeCun's count (bnlab docstring)
    assert totals_rows["vgg_a"][2] == "9,750,922"
    alex = next(t for t in data["tables"] if t["caption"].startswith("AlexNet parameters"))
    assert ["conv1", "Conv2d", "55x55x96", "(11*11*3)*96 + 96 = 34,944", "(11*11*3)*96 + 96 = 34,944"] in alex["rows"]
    assert alex["rows"][-1][3:] == ["60,965,224", "62,378,344"]
    vgg = next(t for t in data["tables"] if t["caption"].startswith("Seed Table 1"))
    assert vgg["rows"][1] == ["CONV3-64", "224*224*64 = 3,211,264 (3.2M)", "(3*3*3)*64 = 1,728"]
    assert vgg["rows"][-1][0] == "TOTAL" and vgg["rows"][-1][2] == "143,652,544"

    text = " ".join(data["findings"])
    assert "60,965,224" in text and "fc6" in text
    assert "13x13" in text and "3.15x" in text
    assert "Figure 1" in text and "not in its text" in text
