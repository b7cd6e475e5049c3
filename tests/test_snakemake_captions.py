"""Captions `snakemake --report` shows for an analysis folder's figures and tables."""

import html
import json
import re

from docutils.core import publish_parts
from snakemake.iocontainers import Wildcards

from bnlab.report.snakemake_captions import AnalysisCaptions, rst_text


def rendered(rst: str) -> str:
    """The plain text docutils makes of reST, as Snakemake renders a caption."""
    body = publish_parts(rst, writer="html", settings_overrides={"report_level": 5})["body"]
    return html.unescape(re.sub(r"<[^>]+>", "", body)).strip()


def test_a_caption_renders_as_its_own_text_whatever_its_punctuation():
    for text in ["(kH*kW*C_in per filter)*filter", "- a list? no: a caption", "1. not a list either",
                 "`role` |sub| name_ [1]_ <url> **bold** \\ back-slash", "min..max over seeds; 95% [-0.4, +0.3]"]:
        assert rendered(rst_text(text)) == text
    # without the escapes reST eats markup: the emphasis stars, a list's dash
    assert rendered("a *plain* caption") == "a plain caption"
    assert rendered("- a list? no: a caption") == "a list? no: a caption"


def write_fragment(folder, **parts):
    folder.mkdir(parents=True)
    (folder / "fragment.json").write_text(json.dumps({"figures": [], "tables": [], **parts}))


def test_figures_and_described_tables_get_their_captions_others_say_what_wrote_them(tmp_path):
    folder = tmp_path / "studies" / "lenet" / "summary"
    write_fragment(folder, figures=[{"file": "curves.png", "caption": "Learning *curves*"}],
                   data=[{"file": "runs.csv", "caption": "One row per run"}])
    captions = AnalysisCaptions(str(folder))
    assert rendered(captions.of(Wildcards(fromdict={"figure": "curves", "study": "lenet"}))) == "Learning *curves*"
    assert rendered(captions.of(Wildcards(fromdict={"table": "runs"}))) == "One row per run"
    other = rendered(captions.of(Wildcards(fromdict={"table": "per_seed"})))
    assert other.startswith("per_seed.csv: the numbers the summary analysis computed")
    # its text is the folder: the same on every read of the workflow, so never a reason to re-run
    assert repr(captions) == repr(AnalysisCaptions(str(folder)))
