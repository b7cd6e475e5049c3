"""The report section of seed 003 problem 3: tables and findings built from the computed numbers.

    build_section([("mlp", (1, 28, 28)), ("lenet5", (1, 28, 28))], out_dir)  # -> out_dir/section.json

section.json = {"tables": [{"caption", "header", "rows"}], "figures": [], "findings": [str], "answers": [str],
                "background": [{"title", "source", "paragraphs": [str]}]};
every cell is a string, numbers with thousands separators. The background parts
(bnlab.analyses.architecture.background) explain the seed's questions 3.3 and 3.4(a, d) in words,
with numbers computed from the modules; their tables follow the section's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from bnlab.models import create_model
from bnlab.models.accounting import layer_table, shape_text, totals
from bnlab.runfolder import write_json

from . import reference as ref
from .background import inception_background, receptive_background
from .fmt import short, thousands
from .inception import CROSS_CHECK_INPUT, LECTURE_FILTERS, SEED_INPUT, inception_summary
from .receptive import receptive_field_formula, receptive_field_probe
from .vgg_table import vgg19_seed_table

SECTION_FILE = "section.json"

FIGURE1_NOTE = (
    "The seed's Figure 1 (the inception filter numbers) is not in its text; the common lecture example is used "
    f"(Stanford CS231n 2017, lecture 9): naive = 1x1 conv {LECTURE_FILTERS['1x1']}, "
    f"3x3 conv {LECTURE_FILTERS['3x3']}, 5x5 conv {LECTURE_FILTERS['5x5']}, 3x3 max-pool (stride 1, same padding), concatenated; dimension "
    f"reduction adds 1x1 convs of {LECTURE_FILTERS['reduce3x3']} before the 3x3 and "
    f"{LECTURE_FILTERS['reduce5x5']} before the 5x5 and a 1x1 conv of {LECTURE_FILTERS['pool_proj']} after the pool."
)
ALEXNET_NOTE = (
    "AlexNet input taken as 227x227x3 (the common reading of the paper's 224x224x3: an 11x11 stride-4 conv "
    "needs 227, or 224 with padding 2, to give 55x55); parameter counts do not depend on it."
)


def hwc(shape: Sequence[int]) -> str:
    """(C, H, W) -> '32x32x3' as the seed writes sizes; (F,) -> 'F'."""
    return shape_text(shape, sep="x")


def _table(caption: str, header: list[str], rows: list[list]) -> dict:
    return {"caption": caption, "header": header, "rows": [[str(c) for c in row] for row in rows]}


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%"


def _model_totals(models_used: Sequence[tuple[str, tuple[int, int, int]]]) -> list[tuple[str, tuple, dict]]:
    """(label, input shape, totals) for every model of the section; bnlab models with bn='none', 10 classes."""
    out: list[tuple[str, tuple, dict]] = []
    seen = set()
    for name, shape in models_used:
        shape = tuple(int(d) for d in shape)
        if (name, shape) in seen:
            continue
        seen.add((name, shape))
        with torch.device("meta"):
            model = create_model(name, input_shape=shape, num_classes=10, bn="none")
        out.append((f"{name} (bnlab, no BN, 10 classes)", shape, totals(layer_table(model, shape))))
    references = [
        ("AlexNet, paper (2-GPU groups on conv2/4/5)", ref.ALEXNET_INPUT, ref.alexnet_paper(groups=2)),
        ("AlexNet, paper channels as a single tower", ref.ALEXNET_INPUT, ref.alexnet_paper(groups=1)),
        ("torchvision alexnet() (cross-check, 64-192-384-256-256)", ref.VGG_INPUT, ref.torchvision_alexnet()),
        ("VGG19 (Table 1 column E, 1000 classes)", ref.VGG_INPUT, ref.vgg19()),
        ("torchvision vgg19() (cross-check; its AdaptiveAvgPool2d(7) adds 7x7x512 activations)",
         ref.VGG_INPUT, ref.torchvision_vgg19()),
    ]
    if ("vgg_a", ref.CIFAR_INPUT) not in seen:
        references.append(("vgg_a (bnlab, no BN, 10 classes)", ref.CIFAR_INPUT, ref.vgg_a_cifar()))
    for label, shape, model in references:
        out.append((label, shape, totals(layer_table(model, shape))))
    return out


def _alexnet_rows() -> tuple[list[list[str]], dict, dict, pd.DataFrame]:
    paper = layer_table(ref.alexnet_paper(groups=2), ref.ALEXNET_INPUT)
    tower = layer_table(ref.alexnet_paper(groups=1), ref.ALEXNET_INPUT)
    rows = []
    for (_, p), (_, t) in zip(paper.iterrows(), tower.iterrows()):
        assert p["name"] == t["name"]
        cell = lambda r: f"{r['calc']} = {thousands(r['params'])}" if r["params"] else "0"  # noqa: E731
        rows.append([p["name"], p["type"], hwc(p["output_shape"]), cell(p), cell(t)])
    tp, tt = totals(paper), totals(tower)
    rows.append(["TOTAL", "", "", thousands(tp["params"]), thousands(tt["params"])])
    return rows, tp, tt, paper


def section_data(models_used: Sequence[tuple[str, tuple[int, int, int]]]) -> dict:
    """The section as a dict (what build_section writes)."""
    tables, findings = [], []

    # Totals of every model
    model_totals = _model_totals(models_used)
    tables.append(_table(
        "Model totals per input image, computed from the modules (forward hooks on the meta device): "
        "parameters with and without biases, activations (layer outputs incl. the input, activations/dropout "
        "folded) and multiply-accumulates (conv and FC only). " + ALEXNET_NOTE,
        ["model", "input", "parameters (with biases)", "parameters (no biases)", "activations", "MACs"],
        [[label, hwc(shape), thousands(t["params"]), thousands(t["weights"]), thousands(t["activations"]),
          thousands(t["macs"])] for label, shape, t in model_totals],
    ))
    used = [(label, t) for label, _, t in model_totals if "(bnlab" in label]
    if used:
        findings.append("Models of the training studies (no BN, 10 classes): " + "; ".join(
            f"{label.split(' ')[0]} {thousands(t['params'])} parameters, {thousands(t['macs'])} MACs per image"
            for label, t in used) + ".")

    # AlexNet per layer
    rows, tp, tt, paper = _alexnet_rows()
    tables.append(_table(
        "AlexNet parameters per layer, (kH*kW*C_in per filter)*filters + biases. Paper: conv2, conv4 and conv5 "
        "are split over 2 GPUs (groups=2), so each filter sees half the input channels (48 or 192); single tower: "
        "every filter sees all channels. " + ALEXNET_NOTE,
        ["layer", "type", "output", "parameters (paper, 2 GPUs)", "parameters (single tower)"],
        rows,
    ))
    weighted = paper[paper["params"] > 0]
    top = weighted.loc[weighted["params"].idxmax()]
    fc = weighted[weighted["type"] == "Linear"]["params"].sum()
    findings.append(
        f"AlexNet as in the paper has {thousands(tp['params'])} parameters ({thousands(tp['weights'])} without "
        f"biases); {top['name']} alone holds {thousands(top['params'])} ({_pct(top['params'], tp['params'])}) and "
        f"the three FC layers {_pct(fc, tp['params'])}. Without the 2-GPU grouping (single tower) it would have "
        f"{thousands(tt['params'])} (+{thousands(tt['params'] - tp['params'])}, from conv2/4/5 filters seeing all "
        "input channels instead of half)."
    )

    # VGG19 seed table
    vgg = vgg19_seed_table()
    tables.append(_table(
        "Seed Table 1 filled: VGG19 on 224x224x3, activations (memory) and parameters without biases (compute), "
        "computed from the VGG19 module; TOTAL includes the input.",
        ["Layer", "Number of Activations (Memory)", "Parameters (Compute)"],
        [[r.layer,
          f"{thousands(r.activations)} ({r.activations_short})" if r.layer == "TOTAL"
          else thousands(r.activations) if r.activations_expr == str(r.activations)
          else f"{r.activations_expr} = {thousands(r.activations)} ({r.activations_short})",
          thousands(r.weights) if r.layer == "TOTAL" or r.weights == 0
          else f"{r.weights_expr} = {thousands(r.weights)}"]
         for r in vgg.itertuples()],
    ))
    body = vgg[vgg.layer != "TOTAL"]
    total = vgg[vgg.layer == "TOTAL"].iloc[0]
    early = body.iloc[1:7]  # the 224 and 112 blocks: conv, conv, pool, conv, conv, pool
    fcs = body[body.layer.str.startswith("FC")]
    fc1 = fcs.iloc[0]
    findings.append(
        f"VGG19 has {thousands(total.weights)} parameters without biases and {thousands(total.activations)} "
        f"activations per image ({short(total.activations)}, {thousands(4 * total.activations)} bytes in float32, "
        f"forward only). Memory sits early: the first two blocks (224x224 and 112x112) hold "
        f"{_pct(early.activations.sum(), total.activations)} of the activations but "
        f"{_pct(early.weights.sum(), total.weights)} "
        f"of the parameters; parameters sit late: the three FC layers hold {_pct(fcs.weights.sum(), total.weights)} "
        f"(the first, 25088*4096 = {thousands(fc1.weights)}, alone {_pct(fc1.weights, total.weights)}) "
        f"with {_pct(fcs.activations.sum(), total.activations)} of the activations."
    )

    # Receptive field: the background part's table (formula, composed, probe; weights of stack vs single)
    stack_part = receptive_background()
    tables.append(stack_part["table"])
    rf = stack_part["rows"]
    f3, p3 = receptive_field_formula(3, 5), receptive_field_probe(3, 5)
    agree = sum(r["formula"] == r["probe"] for r in rf)
    findings.append(
        f"Three stacked 5x5 convolutions see a {f3}x{f3} input region by the formula (3*5-3+1 = {f3}) and "
        f"{p3}x{p3} by the probe; formula and probe agree for {agree} of {len(rf)} (N, F) pairs. "
        f"They use 3*(5*5) = {3 * 5 * 5} weights per channel pair against {f3}*{f3} = {f3 * f3} "
        f"for one {f3}x{f3} filter."
    )

    # Inception
    inc_rows, breakdown = [], []
    summaries = {}
    for shape in (SEED_INPUT, CROSS_CHECK_INPUT):
        s = summaries[shape] = inception_summary(shape)
        for key, label in (("naive", "naive"), ("reduction", "dimension reduction")):
            saving = ("" if key == "naive" else
                      f"{s['saving_ratio']:.2f}x fewer ({thousands(s['saving_macs'])} fewer, "
                      f"{100 * s['saving_fraction']:.1f}% saved)")
            inc_rows.append([hwc(shape), label, hwc(s[key]["output_shape"]), thousands(s[key]["macs"]),
                             thousands(s[key]["params"]), saving])
    seed = summaries[SEED_INPUT]
    for key, label in (("naive", "naive"), ("reduction", "dimension reduction")):
        for r in seed[key]["layers"].itertuples():
            if r.type != "Conv2d":
                continue
            breakdown.append([label, r.name.removesuffix(".conv"), hwc(r.output_shape),
                              f"{r.macs_expr} = {thousands(r.macs)}"])
        breakdown.append([label, "TOTAL", hwc(seed[key]["output_shape"]), thousands(seed[key]["macs"])])
    tables.append(_table(
        "Inception modules, naive vs dimension reduction: output size after concatenation and multiplies "
        "(conv MACs, from the modules). " + FIGURE1_NOTE,
        ["input", "module", "output", "multiplies", "parameters", "saving vs naive"],
        inc_rows,
    ))
    tables.append(_table(
        "Inception multiplies per conv on 32x32x256: output positions H*W*C_out times multiplies per output "
        "(kH*kW*C_in).",
        ["module", "branch", "output", "multiplies"],
        breakdown,
    ))
    sci = summaries[CROSS_CHECK_INPUT]
    findings.append(
        f"On a 32x32x256 input the naive inception module outputs {hwc(seed['naive']['output_shape'])} with "
        f"{thousands(seed['naive']['macs'])} multiplies; with dimension reduction "
        f"{hwc(seed['reduction']['output_shape'])} "
        f"with {thousands(seed['reduction']['macs'])}: {seed['saving_ratio']:.2f}x fewer "
        f"({100 * seed['saving_fraction']:.1f}% saved), because the 1x1 convs shrink 256 channels to 64 before the "
        f"expensive 3x3 and 5x5 convs and the pool branch no longer passes all 256 channels on. On 28x28x256 "
        f"(the lecture example's own input, as a cross-check): {thousands(sci['naive']['macs'])} vs "
        f"{thousands(sci['reduction']['macs'])}."
    )
    inception_part = inception_background(SEED_INPUT)
    tables.append(inception_part["table"])
    findings.append(FIGURE1_NOTE)

    # The seed's three questions in words, each with the numbers above (the report's Discussion)
    answers = [
        f"Where do parameters and memory sit? Apart: in VGG19 the first two blocks hold "
        f"{_pct(early.activations.sum(), total.activations)} of the activations and "
        f"{_pct(early.weights.sum(), total.weights)} of the parameters, the three FC layers "
        f"{_pct(fcs.weights.sum(), total.weights)} of the parameters and {_pct(fcs.activations.sum(), total.activations)} "
        f"of the activations; in AlexNet {top['name']} alone holds {_pct(top['params'], tp['params'])} of the "
        f"parameters. Memory goes where the feature maps are large, parameters where the layers are fully connected.",
        f"What do stacked small convolutions see? Three 5x5 convolutions see a {f3}x{f3} region, as one {f3}x{f3} "
        f"filter does, with {3 * 5 * 5} weights per channel pair instead of {f3 * f3} "
        f"({f3 * f3 / (3 * 5 * 5):.1f}x fewer) and two more nonlinearities, which is why VGG stacks 3x3 "
        f"convolutions (Simonyan & Zisserman 2014).",
        f"How much does dimension reduction save? On 32x32x256 the inception module with 1x1 reductions needs "
        f"{seed['saving_ratio']:.2f}x fewer multiplies than the naive one ({100 * seed['saving_fraction']:.1f}% "
        f"saved), and its output has {hwc(seed['reduction']['output_shape']).split('x')[-1]} channels instead of "
        f"{hwc(seed['naive']['output_shape']).split('x')[-1]}, so the next layer is cheaper too.",
    ]

    background = [{"title": part["title"], "source": part["source"], "paragraphs": part["paragraphs"]}
                  for part in (stack_part, inception_part)]
    return {"tables": tables, "figures": [], "findings": findings, "background": background, "answers": answers}


def build_section(models_used: list[tuple[str, tuple[int, int, int]]], out_dir: str | Path) -> None:
    """Write out_dir/section.json (tables, figures, findings) for the architecture-accounting section."""
    write_json(Path(out_dir) / SECTION_FILE, section_data(models_used))
