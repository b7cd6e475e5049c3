"""Captions for `snakemake --report`: each figure and table of an analysis folder with the caption its
analysis wrote.

Snakemake renders a caption file (reStructuredText through Jinja2) for every file a rule marks with
`report()`, with the job's params in reach; the file itself is fixed when the workflow is read. A figure's
caption is known only once its analysis has run (its fragment.json), so the analysis rule hands the caption
template an AnalysisCaptions (report/snakemake/analysis_file.rst calls `of`), which reads the fragment
when the report is built. Snakemake compares only plain-data params with the last run's, so this one never
re-runs an analysis.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from bnlab.analyses.registry import FRAGMENT

# Any ASCII punctuation may be reST markup (*emphasis*, `roles`, |substitutions|, _links, "- " lists);
# a backslash before it always stands for the character itself.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def rst_text(text: str) -> str:
    """`text` as reST that renders as exactly that text."""
    return _PUNCTUATION.sub(r"\\\1", " ".join(str(text).split()))


@dataclass(frozen=True)
class AnalysisCaptions:
    folder: str  # results/studies/<study>/<analysis>

    def of(self, wildcards) -> str:
        """reST caption of the figure (wildcard `figure`: <figure>.png) or table (`table`: <table>.csv)
        the report's pattern matched in this folder."""
        values = dict(wildcards.items())
        fragment = json.loads((Path(self.folder) / FRAGMENT).read_text())
        analysis = Path(self.folder).name
        if "figure" in values:
            name, parts = f"{values['figure']}.png", fragment.get("figures", [])
            fallback = f"{name}: drawn by the {analysis} analysis; the PDF does not show it."
        else:
            name, parts = f"{values['table']}.csv", fragment.get("data", [])
            fallback = f"{name}: the numbers the {analysis} analysis computed for this section, as it wrote them."
        caption = next((part["caption"] for part in parts if part["file"] == name), fallback)
        return rst_text(caption)
