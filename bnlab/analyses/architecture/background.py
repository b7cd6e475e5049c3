"""Written background for seed 003 problem 3: stacked small convolutions (3.3) and the inception module (3.4a, d).

Every number in the paragraphs is computed here from real modules (bnlab's
accounting: weights and multiplies from forward hooks, on the meta device) or
from the closed forms they are checked against; nothing is typed in.

    stack = receptive_background()      # {"title", "source", "paragraphs": [...], "table": {...}, "rows"}
    inc = inception_background()        # same shape, for the naive vs dimension-reduction module
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bnlab.models.accounting import layer_table, totals

from .fmt import thousands
from .inception import LECTURE_FILTERS, SEED_INPUT, Inception, output_shape
from .receptive import receptive_field_composed, receptive_field_formula, receptive_field_probe

STACK_CHANNELS = 64  # C of the stack-vs-single comparison: VGG's first block width
STACK_SIDE = 32  # spatial size the accounting's forward uses (the weights do not depend on it)
SEED_STACK = (3, 5)  # the seed's question: three 5x5 filters
EQ = "\u00a0=\u00a0"  # '=' between non-breaking spaces: a table cell's "5*3-5+1 = 11" stays on one line


def _hwc(shape: Sequence[int]) -> str:
    c, h, w = shape
    return f"{h}x{w}x{c}"


def _table(caption: str, header: list[str], rows: list[list]) -> dict:
    return {"caption": caption, "header": header, "rows": [[str(c) for c in row] for row in rows]}


# ------------------------------------------------------------------ 3.3: stacked convolutions
def conv_stack(n: int, f: int, channels: int) -> nn.Sequential:
    """n Conv2d(channels, channels, f) with stride 1, 'same' padding, no bias, on the meta device."""
    with torch.device("meta"):
        return nn.Sequential(*[nn.Conv2d(channels, channels, f, padding=f // 2, bias=False) for _ in range(n)])


def stack_row(n: int, f: int, channels: int = STACK_CHANNELS) -> dict:
    """One (N, F): the field by formula, by composing the stack's layers and by a gradient probe, and the
    weights (accounting) of the stack and of the one big conv with the same field, C channels in and out."""
    formula = receptive_field_formula(n, f)
    stack = conv_stack(n, f, channels)
    single = conv_stack(1, formula, channels)
    shape = (channels, STACK_SIDE, STACK_SIDE)
    stack_w = totals(layer_table(stack, shape))["weights"]
    single_w = totals(layer_table(single, shape))["weights"]
    return {"n": n, "f": f, "formula": formula, "composed": receptive_field_composed(stack),
            "probe": receptive_field_probe(n, f), "channels": channels,
            "stack_weights": stack_w, "single_weights": single_w,
            "stack_per_c2": n * f * f, "single_per_c2": formula * formula}


def receptive_background(fs: Sequence[int] = (3, 5, 7), ns: Sequence[int] = (1, 2, 3, 4, 5),
                         channels: int = STACK_CHANNELS, seed_case: tuple[int, int] = SEED_STACK) -> dict:
    """Derivation of NF - N + 1 in words, the stack-vs-single weights, and the check against composition and
    probe, with the table behind it. `seed_case` = (N, F) the seed asks about (three 5x5 filters)."""
    rows = [stack_row(n, f, channels) for f in fs for n in ns]
    sn, sf = seed_case
    seed = next((r for r in rows if (r["n"], r["f"]) == (sn, sf)), None) or stack_row(sn, sf, channels)
    agree = sum(r["formula"] == r["composed"] == r["probe"] for r in rows)
    weights_ok = sum(r["stack_weights"] == r["stack_per_c2"] * channels ** 2
                     and r["single_weights"] == r["single_per_c2"] * channels ** 2 for r in rows)
    # the comparison sentence names each F's N = 3 row (VGG's three 3x3 layers) or its largest N
    examples = []
    for f in fs:
        r = next((r for r in rows if r["f"] == f and r["n"] == 3), None) or [r for r in rows if r["f"] == f][-1]
        examples.append(
            f"{r['n']} {f}x{f} layers hold {r['n']}*{f}^2*C^2 = {r['stack_per_c2']}*C^2 = "
            f"{thousands(r['stack_weights'])} weights against {r['formula']}^2*C^2 = {r['single_per_c2']}*C^2 = "
            f"{thousands(r['single_weights'])} for one {r['formula']}x{r['formula']} layer "
            f"({r['stack_weights'] / r['single_weights']:.2f} times as many)")
    paragraphs = [
        "Seed 003, problem 3.3: why a stack of N FxF convolutions (stride 1) sees what one "
        "(NF-N+1)x(NF-N+1) convolution sees. One FxF convolution's output depends on an FxF patch of its "
        "input. Put a second FxF convolution on top: each of its outputs reads F neighbouring positions of the "
        "first layer along each axis, and neighbouring positions of the first layer read patches shifted by one "
        "input pixel, so together they cover F + (F - 1) input pixels. Each added layer widens the field by "
        "F - 1, so after N layers its side is F + (N - 1)(F - 1) = 1 + N(F - 1) = NF - N + 1, the side of one "
        f"(NF-N+1)x(NF-N+1) filter. For the seed's {sn} filters of size {sf}x{sf}: "
        f"{sn}*{sf} - {sn} + 1 = {seed['formula']}, a {seed['formula']}x{seed['formula']} receptive field "
        f"(composing the real stack's layers gives {seed['composed']}, the gradient probe {seed['probe']}).",
        f"The stack reaches that field with fewer weights. With C channels in and out, N FxF layers hold "
        f"N*F^2*C^2 weights and one (NF-N+1)x(NF-N+1) layer (NF-N+1)^2*C^2; per output position the multiplies "
        f"are in the same ratio. For C = {channels}: " + "; ".join(examples) + ". The stack also applies N "
        "nonlinearities where the single layer applies one, which makes the function more discriminative "
        "(Simonyan & Zisserman 2014, section 2.3, make both points for three 3x3 layers against one 7x7).",
        f"Check: for all {len(rows)} (N, F) pairs of the table the formula, the field composed from the stack's "
        f"own layers (each adds (k - 1) times the product of the strides below it) and a gradient probe on a "
        f"real stack agree in {agree} of {len(rows)}; the weights counted by bnlab's accounting equal "
        f"N*F^2*C^2 and (NF-N+1)^2*C^2 in {weights_ok} of {len(rows)}.",
    ]
    table = _table(
        f"Receptive field and weights of N stacked FxF convolutions (stride 1, C = {channels} channels in and "
        "out, no biases) against one convolution with the same field: the field by the formula NF-N+1, by "
        "composing the stack's layers and by a gradient probe; weights counted by bnlab's accounting.",
        ["N", "F", "field NF-N+1", "composed", "probe", "stack N*F^2*C^2", "single (NF-N+1)^2*C^2",
         "stack / single"],
        [[r["n"], r["f"], f"{r['n']}*{r['f']}-{r['n']}+1{EQ}{r['formula']}", r["composed"], r["probe"],
          f"{r['stack_per_c2']}*C^2{EQ}{thousands(r['stack_weights'])}",
          f"{r['single_per_c2']}*C^2{EQ}{thousands(r['single_weights'])}",
          f"{r['stack_weights'] / r['single_weights']:.2f}"] for r in rows],
    )
    return {"title": "Stacks of small convolutions", "source": "Seed 003, problem 3.3",
            "paragraphs": paragraphs, "table": table, "rows": rows}


# ------------------------------------------------------------------ 3.4: inception modules
def _module(in_channels: int, reduce: bool, filters: dict[str, int]) -> Inception:
    with torch.device("meta"):
        return Inception(in_channels, reduce=reduce, filters=filters)


def module_cost(in_channels: int, side: tuple[int, int], reduce: bool, filters: dict[str, int]) -> dict:
    """One module on an (in_channels, H, W) input: output shape, multiplies (accounting) and per-branch
    multiplies (the 1x1 / 3x3 / 5x5 / pool branches' convs summed)."""
    module = _module(in_channels, reduce, filters)
    shape = (in_channels, *side)
    table = layer_table(module, shape, include_input=False)
    branches = {b: int(table[table["name"].str.startswith(b + ".")]["macs"].sum())
                for b in ("branch1", "branch3", "branch5", "branch_pool")}
    return {"input_channels": in_channels, "output_shape": output_shape(module, shape),
            "macs": totals(table)["macs"], "branch_macs": branches}


def stacked_costs(input_shape: tuple[int, int, int], reduce: bool, depth: int, filters: dict[str, int]) -> list[dict]:
    """`depth` modules one after another, each reading the previous one's output."""
    channels, side, out = input_shape[0], tuple(input_shape[1:]), []
    for _ in range(depth):
        cost = module_cost(channels, side, reduce, filters)
        out.append(cost)
        channels = cost["output_shape"][0]
    return out


def inception_background(input_shape: tuple[int, int, int] = SEED_INPUT, filters: dict[str, int] | None = None,
                         depth: int = 3) -> dict:
    """The idea of the inception module (3.4a) and the naive module's problem (3.4d), numbers from the modules:
    multiplies, output depth, and the depth and multiplies of `depth` stacked naive and reduction modules."""
    f = {**LECTURE_FILTERS, **(filters or {})}
    naive = stacked_costs(input_shape, False, depth, f)
    red = stacked_costs(input_shape, True, depth, f)
    c_in = input_shape[0]
    n1, r1 = naive[0], red[0]
    branch_sum = f["1x1"] + f["3x3"] + f["5x5"]
    five = n1["branch_macs"]["branch5"]
    depth_growth = ", ".join(f"after {k + 1} module{'s' if k else ''} {thousands(c['output_shape'][0])}"
                             for k, c in enumerate(naive))
    naive_macs = ", ".join(thousands(c["macs"]) for c in naive)
    red_macs = ", ".join(thousands(c["macs"]) for c in red)
    total_naive, total_red = sum(c["macs"] for c in naive), sum(c["macs"] for c in red)
    size = _hwc(input_shape)
    paragraphs = [
        "Seed 003, problem 3.4(a): the idea of the inception module (Szegedy et al. 2014). It applies 1x1, 3x3 "
        "and 5x5 convolutions and a 3x3 max-pool in parallel to the same input and concatenates their outputs "
        "along the channels. Which filter size suits a layer is not known in advance; the module computes all "
        "of them side by side, so the next layer sees features at several scales at once and training decides, "
        "through the weights, how much each scale contributes. 1x1 convolutions are its dimension reduction: "
        f"placed before the expensive 3x3 and 5x5 convolutions they shrink the {c_in} input channels to "
        f"{f['reduce3x3']} and {f['reduce5x5']}, and after the pool they project its output to "
        f"{f['pool_proj']} channels, which bounds both the cost and the depth of the output.",
        f"Seed 003, problem 3.4(d): the naive module's problem. On a {size} input it takes "
        f"{thousands(n1['macs'])} multiplies, {100 * five / n1['macs']:.1f}% of them in the 5x5 branch alone "
        f"({thousands(five)}), because every 3x3 and 5x5 filter reads all {c_in} input channels. And its output "
        f"keeps getting deeper: the pool branch passes every input channel through, so the output has the "
        f"branches' filters plus the input channels, {f['1x1']} + {f['3x3']} + {f['5x5']} + {c_in} = "
        f"{n1['output_shape'][0]}. Stacked, each naive module adds {branch_sum} channels to its input: "
        f"{depth_growth}; the multiplies grow with the depth, {naive_macs} for modules 1 to {depth} "
        f"({thousands(total_naive)} in all).",
        f"With the 1x1 reductions the first module takes {thousands(r1['macs'])} multiplies "
        f"({n1['macs'] / r1['macs']:.2f}x fewer, {100 * (1 - r1['macs'] / n1['macs']):.1f}% saved) and its "
        f"output has {r1['output_shape'][0]} channels ({f['1x1']} + {f['3x3']} + {f['5x5']} + {f['pool_proj']}) "
        f"whatever its input depth, so {depth} stacked modules stay at {r1['output_shape'][0]} channels and take "
        f"{red_macs} multiplies ({thousands(total_red)} in all, {total_naive / total_red:.2f}x fewer than the "
        f"naive stack).",
    ]
    rows = [[k + 1, "naive", _hwc((c["input_channels"], *input_shape[1:])), _hwc(c["output_shape"]),
             thousands(c["macs"])] for k, c in enumerate(naive)]
    rows += [[k + 1, "dimension reduction", _hwc((c["input_channels"], *input_shape[1:])), _hwc(c["output_shape"]),
              thousands(c["macs"])] for k, c in enumerate(red)]
    table = _table(
        f"{depth} inception modules stacked on a {size} input, each reading the previous one's output: the naive "
        "module's output deepens by its branches' filters every time (its pool branch passes all input "
        "channels on), the dimension-reduction module's stays fixed. Multiplies are conv MACs from the modules.",
        ["module", "kind", "input", "output", "multiplies"], rows)
    return {"title": "The inception module", "source": "Seed 003, problem 3.4 (a) and (d)",
            "paragraphs": paragraphs, "table": table, "naive": naive, "reduction": red, "filters": f}


