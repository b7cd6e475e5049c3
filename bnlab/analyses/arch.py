"""Architecture accounting (seed 003 p. 3): parameters, activations and multiplies of the studies' models.

Trains nothing: the tables are computed from the real modules (bnlab.analyses.architecture).
"""

from __future__ import annotations

from bnlab.analyses.registry import Analysis, fragment, register
from bnlab.data.catalog import INPUT_SHAPES
from bnlab.runfolder import read_json, write_json

SECTION_JSON = "section.json"


def models_used(plan, study) -> dict:
    """(model, input shape) of every network the plan's training studies use: what the section tabulates."""
    return {"models_used": sorted({(r.model, INPUT_SHAPES[r.dataset]) for r in plan.runs})}


def compute(ctx) -> None:
    from bnlab.analyses.architecture.section import section_data

    used = [(name, tuple(shape)) for name, shape in ctx.extra.get("models_used", [])]
    write_json(ctx.out / SECTION_JSON, section_data(used))


# The report template renders a fragment's "background" parts as boxed blocks; True would also list
# their paragraphs as findings (as before the template rendered them).
BACKGROUND_AS_FINDINGS = False


def background_findings(background: list[dict]) -> list[str]:
    """Background paragraphs as findings sentences, the first of each part led by its title."""
    out = []
    for part in background:
        for i, paragraph in enumerate(part["paragraphs"]):
            out.append(f"{part['title']}. {paragraph}" if i == 0 else paragraph)
    return out


def section_fragment(ctx) -> dict:
    """A section.json written by a builder (tables with plain rows, findings, background) as a fragment.

    fragment["background"] = [{"title": str, "source": str, "paragraphs": [str, ...]}]: bnlab's own
    explanation of what the seed asks (here seed 003 problems 3.3 and 3.4 a, d), numbers computed.
    """
    section = read_json(ctx.out / SECTION_JSON)
    tables = [{"caption": t["caption"], "header": t["header"],
               "rows": [{"cells": [str(c) for c in row], "diverged": False} for row in t["rows"]]}
              for t in section.get("tables", [])]
    background = section.get("background", [])
    findings = list(section.get("findings", []))
    if BACKGROUND_AS_FINDINGS:
        findings += background_findings(background)
    frag = fragment(tables=tables, findings=findings, figures=section.get("figures", []),
                    references=["Simonyan & Zisserman 2014", "Szegedy et al. 2014"] if background else [],
                    stats={"answers": section.get("answers", [])})
    frag["background"] = background
    return frag


register(Analysis(
    name="arch", description="parameters, activations and multiplies per layer of the studies' models, VGG19 "
                             "and AlexNet tables, receptive fields, inception modules (seed 003 p. 3)",
    compute=compute, fragment=section_fragment, trains=False, plan_params=models_used))
