"""Seed 001's gradient check of bnlab's batch norm (hand-written backward) and its match with torch's BN."""

from __future__ import annotations

from bnlab.analyses.arch import section_fragment
from bnlab.analyses.registry import Analysis, register


def compute(ctx) -> None:
    from bnlab.gradcheck import build_section  # writes ctx.out/section.json

    build_section(ctx.out, seed=int(ctx.options["seed"]))


register(Analysis(
    name="gradcheck", description="bnlab's BN backward against centered differences, and against "
                                  "torch.nn.BatchNorm (seed 001)",
    compute=compute, fragment=section_fragment, trains=False,
    options={"seed": {"type": "integer", "minimum": 0, "default": 0,
                      "description": "seed of the random networks and batches"}}))
