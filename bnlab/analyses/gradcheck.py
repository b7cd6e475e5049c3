"""Seed 001's gradient check of bnlab's batch norm (hand-written backward) and its match with torch's BN.

Measures (stats["measures"], bnlab.analyses.evidence; params {}, seed None, as
the check trains no run), the numbers behind the section's tables and findings:
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
from bnlab.runfolder import read_json, write_json

MEASURES_JSON = "measures.json"


def compute(ctx) -> None:
    from bnlab.gradcheck import build_section  # writes ctx.out/section.json

    seed = int(ctx.options["seed"])
    write_json(ctx.out / MEASURES_JSON, build_section(ctx.out, seed=seed))


def make_fragment(ctx) -> dict:
    frag = section_fragment(ctx)
    numbers = read_json(ctx.out / MEASURES_JSON)
    frag["stats"]["measures"] = {name: [measure({}, None, value)] for name, value in numbers.items()}
    return frag


register(Analysis(
    name="gradcheck", description="bnlab's BN backward against centered differences, and against "
                                  "torch.nn.BatchNorm (seed 001)",
    compute=compute, fragment=make_fragment, trains=False,
    options={"seed": {"type": "integer", "minimum": 0, "default": 0,
                      "description": "seed of the random networks and batches"}}))
