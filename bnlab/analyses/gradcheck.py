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
They are recomputed with build_section's settings (every draw is seeded, so they
are the section's numbers) and kept in measures.json.
"""

from __future__ import annotations

import inspect

from bnlab.analyses.arch import section_fragment
from bnlab.analyses.evidence import measure
from bnlab.analyses.registry import Analysis, register
from bnlab.runfolder import read_json, write_json

MEASURES_JSON = "measures.json"
DTYPES = ("float64", "float32")


def gradcheck_numbers(seed: int = 0, **settings) -> dict[str, float]:
    """The check's numbers by name, with build_section's defaults for ns, d and widths unless given."""
    import torch

    from bnlab.gradcheck import broken_bn_backward, build_section, check_network, compare_with_torch

    defaults = {k: p.default for k, p in inspect.signature(build_section).parameters.items()
                if k in ("ns", "d", "widths")}
    ns, d, widths = (settings.get(k, defaults[k]) for k in ("ns", "d", "widths"))
    checks = [check_network("bnlab", widths, n=n, d=d, seed=seed) for n in ns]
    reference = check_network("torch", widths, n=max(ns), d=d, seed=seed)
    with broken_bn_backward():
        broken = check_network("bnlab", widths, n=max(ns), d=d, seed=seed)
    out = {"max_rel_error": max(float(c["max_rel_diff"].max()) for c in checks),
           "max_abs_error": max(float(c["max_abs_diff"].max()) for c in checks),
           "torch_max_abs_error": float(reference["max_abs_diff"].max()),
           "broken_max_abs_error": float(broken["max_abs_diff"].max())}
    for name in DTYPES:
        frames = [compare_with_torch(dims=dims, dtype=getattr(torch, name), seed=seed) for dims in (1, 2)]
        out[f"vs_torch_max_abs_diff_{name}"] = max(float(f["max_abs_diff"].max()) for f in frames)
        out[f"vs_torch_max_rel_diff_{name}"] = max(float((f["max_abs_diff"] / f["max_abs_value"]).max())
                                                   for f in frames)
    return out


def compute(ctx) -> None:
    from bnlab.gradcheck import build_section  # writes ctx.out/section.json

    seed = int(ctx.options["seed"])
    build_section(ctx.out, seed=seed)
    write_json(ctx.out / MEASURES_JSON, gradcheck_numbers(seed))


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
