"""The arch section's background (seed 003 problems 3.3 and 3.4 a, d): every number in the text is computed.

Each test writes the numbers out by closed form and checks that the sentence carries
exactly them, and that another input changes them (nothing is a typed-in constant).
"""

import re

import pytest

from bnlab.analyses.arch import background_findings
from bnlab.analyses.architecture.background import inception_background, receptive_background, stack_row
from bnlab.analyses.architecture.fmt import thousands


def numbers(text: str) -> list[str]:
    return re.findall(r"\d[\d,]*(?:\.\d+)?", text)


# ---------------------------------------------------------------- 3.3: stacked convolutions

@pytest.mark.parametrize("n, f", [(1, 3), (3, 3), (3, 5), (5, 5), (2, 7)])
def test_stack_row_matches_the_closed_forms(n, f):
    row = stack_row(n, f, channels=16)
    assert row["formula"] == row["composed"] == row["probe"] == n * f - n + 1
    assert row["stack_weights"] == n * f * f * 16 ** 2
    assert row["single_weights"] == (n * f - n + 1) ** 2 * 16 ** 2


def test_receptive_text_carries_the_computed_numbers():
    part = receptive_background(fs=(3, 5), ns=(1, 2, 3), channels=64)
    derivation, weights, check = part["paragraphs"]
    assert "1 + N(F - 1) = NF - N + 1" in derivation
    assert "3*5 - 3 + 1 = 13, a 13x13 receptive field" in derivation
    assert "composing the real stack's layers gives 13, the gradient probe 13" in derivation
    # three 3x3 against one 7x7, and three 5x5 against one 13x13, C = 64
    assert f"27*C^2 = {thousands(27 * 64 ** 2)} weights against 7^2*C^2 = 49*C^2 = {thousands(49 * 64 ** 2)}" in weights
    assert (f"75*C^2 = {thousands(75 * 64 ** 2)} weights against 13^2*C^2 = 169*C^2 = "
            f"{thousands(169 * 64 ** 2)}") in weights
    assert f"({27 / 49:.2f} times as many)" in weights
    assert "agree in 6 of 6" in check and "in 6 of 6." in check
    table = part["table"]
    assert len(table["rows"]) == 6 and all(len(r) == len(table["header"]) for r in table["rows"])
    assert table["rows"][2][:5] == ["3", "3", "3*3-3+1\u00a0=\u00a07", "7", "7"]


def test_receptive_text_follows_its_inputs():
    a = receptive_background(fs=(3,), ns=(1, 3), channels=64)
    b = receptive_background(fs=(3,), ns=(1, 3), channels=32, seed_case=(2, 3))
    assert thousands(27 * 64 ** 2) in a["paragraphs"][1] and thousands(27 * 32 ** 2) in b["paragraphs"][1]
    assert thousands(27 * 64 ** 2) not in b["paragraphs"][1]
    assert "2*3 - 2 + 1 = 5, a 5x5 receptive field" in b["paragraphs"][0]
    assert "agree in 2 of 2" in a["paragraphs"][2]


# ---------------------------------------------------------------- 3.4: inception

def closed_form(h, w, c, f):
    """(naive out channels, naive MACs, naive 5x5 MACs, reduction out channels, reduction MACs), written out."""
    conv = lambda k, c_in, c_out: h * w * c_out * k * k * c_in  # noqa: E731
    naive = conv(1, c, f["1x1"]) + conv(3, c, f["3x3"]) + conv(5, c, f["5x5"])
    red = (conv(1, c, f["1x1"]) + conv(1, c, f["reduce3x3"]) + conv(3, f["reduce3x3"], f["3x3"])
           + conv(1, c, f["reduce5x5"]) + conv(5, f["reduce5x5"], f["5x5"]) + conv(1, c, f["pool_proj"]))
    return (f["1x1"] + f["3x3"] + f["5x5"] + c, naive, conv(5, c, f["5x5"]),
            f["1x1"] + f["3x3"] + f["5x5"] + f["pool_proj"], red)


LECTURE = {"1x1": 128, "3x3": 192, "5x5": 96, "reduce3x3": 64, "reduce5x5": 64, "pool_proj": 64}
# GoogLeNet's inception (3a), Szegedy et al. 2014 Table 1: a different module on a different input
INCEPTION_3A = {"1x1": 64, "3x3": 128, "5x5": 32, "reduce3x3": 96, "reduce5x5": 16, "pool_proj": 32}


@pytest.mark.parametrize("shape, filters", [((256, 32, 32), LECTURE), ((192, 28, 28), INCEPTION_3A)])
def test_inception_text_carries_the_computed_numbers(shape, filters):
    c, h, w = shape
    part = inception_background(shape, filters, depth=3)
    idea, naive_text, red_text = part["paragraphs"]
    out1, macs1, five, red_out, red_macs = closed_form(h, w, c, filters)
    grow = filters["1x1"] + filters["3x3"] + filters["5x5"]
    assert f"shrink the {c} input channels to {filters['reduce3x3']} and {filters['reduce5x5']}" in idea
    assert f"On a {h}x{w}x{c} input it takes {thousands(macs1)} multiplies" in naive_text
    assert f"{100 * five / macs1:.1f}% of them in the 5x5 branch alone ({thousands(five)})" in naive_text
    assert (f"{filters['1x1']} + {filters['3x3']} + {filters['5x5']} + {c} = {out1}.") in naive_text
    # each naive module adds the branches' filters; module k reads the previous output
    depths = [c + grow * k for k in (1, 2, 3)]
    assert f"adds {grow} channels to its input: after 1 module {thousands(depths[0])}, after 2 modules " \
           f"{thousands(depths[1])}, after 3 modules {thousands(depths[2])}" in naive_text
    naive_stack = [closed_form(h, w, cin, filters)[1] for cin in (c, depths[0], depths[1])]
    assert ", ".join(thousands(m) for m in naive_stack) + " for modules 1 to 3" in naive_text
    assert f"({thousands(sum(naive_stack))} in all)" in naive_text
    red_stack = [closed_form(h, w, cin, filters)[4] for cin in (c, red_out, red_out)]
    assert f"the first module takes {thousands(red_macs)} multiplies ({macs1 / red_macs:.2f}x fewer" in red_text
    assert f"stay at {red_out} channels" in red_text
    assert ", ".join(thousands(m) for m in red_stack) + " multiplies" in red_text
    assert f"{sum(naive_stack) / sum(red_stack):.2f}x fewer than the naive stack" in red_text
    rows = part["table"]["rows"]
    assert rows[2] == ["3", "naive", f"{h}x{w}x{depths[1]}", f"{h}x{w}x{depths[2]}", thousands(naive_stack[2])]
    assert rows[-1][-2:] == [f"{h}x{w}x{red_out}", thousands(red_stack[2])]


def test_inception_numbers_change_with_the_input():
    seed = " ".join(inception_background((256, 32, 32))["paragraphs"])
    other = " ".join(inception_background((256, 28, 28))["paragraphs"])
    assert "1,115,684,864" in seed and "1,115,684,864" not in other
    assert thousands(closed_form(28, 28, 256, LECTURE)[1]) in other
    assert "1,504" in seed and "1,504" in other  # depth does not depend on H x W ...
    deeper = " ".join(inception_background((512, 32, 32))["paragraphs"])
    assert "1,504" not in deeper and thousands(512 + 3 * 416) in deeper  # ... but on the input channels


def test_background_renders_as_findings_with_titles():
    parts = [{"title": "T", "source": "s", "paragraphs": ["one", "two"]}, {"title": "U", "source": "s",
                                                                          "paragraphs": ["three"]}]
    assert background_findings(parts) == ["T. one", "two", "U. three"]
