"""Seed 001's gradient checks: the whole MLP by hand on real images, bnlab's BN layer, and its match with torch's BN.

Options: `seed` (networks, batches, the choice of images), `dataset` (the prepared
file results/data/<dataset>.pt whose training images the hand-written network is
checked on; null: the config's defaults.dataset) and `n` (how many images; the
seed's reduced set is 2). The prepared file is a declared input (extra_inputs), so
Snakemake builds it first.

Measures (stats["measures"], bnlab.analyses.evidence; params {}, seed None, as
the check trains no run), the numbers behind the section's tables and findings:
- manual_max_abs_error / manual_max_rel_error: the hand-written forward and
  backward of the whole MLP (bnlab/analyses/gradient_check/manual_mlp.py) against centred differences
  on n real images, the largest |a - n| and |a - n| / max(1e-8, |a| + |n|)
  over every parameter (W, b, gamma, beta of every layer);
- manual_vs_autograd_max_abs_diff: its gradients against autograd's on bnlab's
  mlp model with torch's BN; manual_loss_vs_model_abs_diff: its cost against
  the model's (torch's and bnlab's BN), training mode;
- manual_broken_max_abs_error: the same check with the batch mean's path left
  out of its BN backward (the check can fail);
- max_rel_error / max_abs_error: bnlab's BN backward against centered
  differences, the largest |a - n| / max(1e-8, |a| + |n|) and |a - n| over
  every parameter and batch size of the check;
- torch_max_abs_error: the same check with torch's BatchNorm (the check's own
  noise floor); broken_max_abs_error: with the variance term dropped from BN's
  dx (the check can fail);
- vs_torch_max_abs_diff_float64 / _float32 and vs_torch_max_rel_diff_float64 /
  _float32: bnlab's BN against torch.nn.BatchNorm1d/2d (outputs, gradients,
  running statistics, eval outputs), largest absolute difference and largest
  difference relative to the quantity's largest value.
They are what build_section computed its tables and findings from, kept in
measures.json.
"""

from __future__ import annotations

from bnlab.analyses.arch import section_fragment
from bnlab.analyses.evidence import measure
from bnlab.analyses.registry import Analysis, register
from bnlab.data.catalog import DATASETS
from bnlab.runfolder import read_json, write_json

MEASURES_JSON = "measures.json"
NAME = "gradcheck"


def dataset_of(plan, study) -> str:
    """The dataset option, or the config's defaults.dataset when it names none."""
    return study.analysis_options.get(NAME, {}).get("dataset") or plan.config["defaults"]["dataset"]


def plan_params(plan, study) -> dict:
    return {"dataset": dataset_of(plan, study)}


def extra_inputs(plan, study) -> list[str]:
    """The prepared dataset whose images the hand-written network is checked on."""
    return [f"data/{dataset_of(plan, study)}.pt"]


def compute(ctx) -> None:
    from bnlab.analyses.gradient_check.checks import build_section  # writes ctx.out/section.json

    dataset = ctx.options.get("dataset") or ctx.extra.get("dataset")
    if not dataset:
        raise ValueError("the gradcheck analysis needs a dataset: set its option `dataset`, or run it with "
                         "the plan's extra (plan_params) that names the config's defaults.dataset")
    data_file = ctx.results / "data" / f"{dataset}.pt"
    if not data_file.is_file():
        raise FileNotFoundError(f"{data_file} does not exist: prepare the dataset first "
                                f"(snakemake {data_file})")
    numbers = build_section(ctx.out, data_file=data_file, seed=int(ctx.options["seed"]),
                            manual_n=int(ctx.options["n"]))
    write_json(ctx.out / MEASURES_JSON, numbers)


def make_fragment(ctx) -> dict:
    frag = section_fragment(ctx)
    numbers = read_json(ctx.out / MEASURES_JSON)
    frag["stats"]["measures"] = {name: [measure({}, None, value)] for name, value in numbers.items()}
    return frag


register(Analysis(
    name=NAME, description="the whole MLP's hand-written gradients and bnlab's BN backward against centered "
                           "differences, and bnlab's BN against torch.nn.BatchNorm (seed 001)",
    compute=compute, fragment=make_fragment, trains=False, plan_params=plan_params, extra_inputs=extra_inputs,
    options={"seed": {"type": "integer", "minimum": 0, "default": 0,
                      "description": "seed of the random networks and batches, and of the choice of images"},
             "dataset": {"enum": [None, *DATASETS], "default": None,
                         "description": "prepared dataset (results/data/<dataset>.pt) whose training images "
                                        "the hand-written network is checked on; null: defaults.dataset"},
             "n": {"type": "integer", "minimum": 2, "default": 2,
                   "description": "images in the hand-written network's check (the seed's reduced set: 2)"}}))
