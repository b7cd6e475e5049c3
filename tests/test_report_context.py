"""The report's assembly from fragment.json files: background parts and the title page's scorecard.

Fragments are written into a tmp studies root the way the analyses leave them
(results/studies/<study>/<analysis>/fragment.json), and the report is rendered
to HTML only (no PDF, no weasyprint).
"""

import re
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest

from bnlab.analyses.registry import FRAGMENT, fragment
from bnlab.analyses.summary import reference_verdict
from bnlab.config import StudyPlan
from bnlab.report.context import reference_counts, report_context, scorecard, study_context
from bnlab.report.render import render_html
from bnlab.runfolder import write_json

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE, STYLE = ROOT / "report" / "template.html.j2", ROOT / "report" / "style.css"


def write_fragment(results: Path, study: str, analysis: str, frag: dict) -> None:
    folder = results / "studies" / study / analysis
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / FRAGMENT, {"analysis": analysis, **frag})


def make_study(name: str, analyses: list[str], title: str | None = None) -> StudyPlan:
    return StudyPlan(name=name, title=title or f"Study {name}", question="?", source="", notes="", runs=[],
                     analyses=analyses, kind="train")


def expectations_stats(confirmed: int, contradicted: int, inconclusive: int) -> dict:
    counts = {"confirmed": confirmed, "contradicted": contradicted, "inconclusive": inconclusive}
    items = [{"claim": f"claim {v} {i}", "source": "paper", "test": "higher", "verdict": v, "reason": "r",
              "observed": "x"} for v, n in counts.items() for i in range(n)]
    return {"expectations": {"counts": counts, "items": items}}


def verdict(v: str, *, ours=0.9, reason="our setup differs"):
    """A published-number verdict as summary.reference_verdict makes it (so the fields never drift)."""
    ref = {"what": "w", "published": "90%", "source": "paper"}
    gaps = []
    if v in ("inside", "outside"):
        ref.update(band=[0.8, 1.0] if v == "inside" else [0.95, 1.0])
    elif reason == "no band is given for the published number":
        pass
    elif reason == "setting":  # our setting at this scale is not the published one
        ref.update(band=[0.8, 1.0])
        gaps = ["Fashion-MNIST (published: MNIST)"]
    else:
        ref.update(differs=reason, band=[0.8, 1.0])
    out = reference_verdict(ref, [] if ours is None else [ours], gaps)
    assert out["verdict"] == v
    return out


def fake_plan(studies: list[StudyPlan]):
    """What report_context reads of a Plan."""
    return SimpleNamespace(studies={s.name: s for s in studies}, runs=[], config_hash="cafe",
                           config={"report": {"title": "Test report", "subtitle": ""}, "results": "results-x"})


@pytest.fixture
def three_studies(tmp_path):
    """alpha: 3 confirmed, 1 contradicted, 2 inconclusive; beta: 0 / 2 / 1; gamma: no expectations.
    Published numbers: alpha 2 inside, 1 outside, 1 setup differs; gamma 1 setup differs, 1 without a run."""
    results = tmp_path / "res"
    write_fragment(results, "alpha", "summary", fragment(
        findings=["alpha summary"],
        stats={"n_runs": 4, "references": [verdict("inside"), verdict("inside"), verdict("outside"),
                                           verdict("not scored")]}))
    write_fragment(results, "alpha", "expectations", fragment(stats=expectations_stats(3, 1, 2)))
    write_fragment(results, "beta", "summary", fragment(stats={"n_runs": 2, "references": []}))
    write_fragment(results, "beta", "expectations", fragment(stats=expectations_stats(0, 2, 1)))
    write_fragment(results, "gamma", "summary", fragment(
        stats={"n_runs": 2, "references": [verdict("not scored"),
                                           verdict("not scored", ours=None, reason="no finished matching run")]}))
    studies = [make_study("alpha", ["summary", "expectations"], "Alpha & co"),
               make_study("beta", ["summary", "expectations"]), make_study("gamma", ["summary"])]
    return results, studies


def test_scorecard_counts_links_and_leaves_out_studies_without_expectations(three_studies):
    results, studies = three_studies
    sections = [study_context(s, results, results / "studies") for s in studies]
    card = scorecard(sections)
    assert [r["name"] for r in card["rows"]] == ["alpha", "beta"]  # gamma has no expectations
    alpha, beta = card["rows"]
    assert (alpha["href"], alpha["title"]) == ("#alpha", "Alpha & co")
    assert (alpha["confirmed"], alpha["contradicted"], alpha["inconclusive"]) == (3, 1, 2)
    assert (beta["confirmed"], beta["contradicted"], beta["inconclusive"]) == (0, 2, 1)
    assert card["totals"] == {"confirmed": 3, "contradicted": 3, "inconclusive": 3}
    # published numbers count over every study, gamma's too
    assert card["references"] == {"n": 6, "scored": 3, "inside": 2, "outside": 1, "not_scored": 3,
                                  "setting": 0, "different": 2, "other": 1}


def test_each_section_ends_with_a_discussion_from_its_verdicts(three_studies):
    results, studies = three_studies
    alpha, beta, gamma = (study_context(s, results, results / "studies") for s in studies)
    expected, published = alpha["discussion"]
    assert expected.startswith("Are the results as expected? Of the 6 expectations from the literature and the "
                               "seed checked on these runs, 3 hold, 1 does not and 2 are undecided.")
    assert published.startswith("Against the published numbers: 2 of the 3 that could be scored are reproduced.")
    assert beta["discussion"] == [beta["discussion"][0]] and "0 hold, 2 do not" in beta["discussion"][0]
    assert gamma["discussion"] == ["None of the 2 published numbers of this study could be compared with these "
                                   "runs (the table of published numbers says why)."]
    html = render_html(report_context(fake_plan(studies), results), TEMPLATE, STYLE)
    assert html.count("<h3>Discussion</h3>") == 3


def test_no_expectations_no_scorecard(three_studies):
    results, studies = three_studies
    assert scorecard([study_context(studies[2], results, results / "studies")]) is None
    assert scorecard([]) is None


def test_reference_counts_tell_the_reasons_apart():
    counts = reference_counts([verdict("not scored", reason="no band is given for the published number"),
                               verdict("not scored", reason="another network"), verdict("outside"),
                               verdict("not scored", reason="setting"), verdict("not scored", reason="setting")])
    assert (counts["different"], counts["setting"], counts["other"], counts["scored"], counts["outside"]) == \
        (1, 2, 1, 1, 1)


class Cells(HTMLParser):
    """The scorecard's rows as (cell texts, link of the first cell, classes of the cells)."""

    def __init__(self):
        super().__init__()
        self.rows, self.inside, self.cell = [], False, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and "scorecard" in (attrs.get("class") or ""):
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append({"cells": [], "href": None, "classes": []})
        elif self.inside and tag == "td":
            self.cell = ""
            self.rows[-1]["classes"].append(attrs.get("class") or "")
        elif self.inside and tag == "a" and self.rows[-1]["href"] is None:
            self.rows[-1]["href"] = attrs.get("href")

    def handle_endtag(self, tag):
        if tag == "table":
            self.inside = False
        elif self.inside and tag == "td":
            self.rows[-1]["cells"].append(" ".join(self.cell.split()))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def test_title_page_scorecard_renders_with_links_to_the_sections(three_studies):
    results, studies = three_studies
    html = render_html(report_context(fake_plan(studies), results), TEMPLATE, STYLE)
    parser = Cells()
    parser.feed(html)
    body = [r for r in parser.rows if r["cells"]]
    assert [r["cells"] for r in body] == [["Alpha & co", "3", "1", "2"], ["Study beta", "0", "2", "1"],
                                          ["all studies", "3", "3", "3"]]
    assert [r["href"] for r in body[:2]] == ["#alpha", "#beta"]
    assert "<code>results-x/runs</code>" in html  # where the runs are, as the config names the folder
    for name in ("alpha", "beta"):  # each link has its target
        assert f'<section class="study" id="{name}">' in html
    # contradicted counts are marked (bold, red), a zero is not
    assert [r["classes"][2] for r in body] == ["contradicted", "contradicted", "contradicted"]
    assert "contradicted" not in body[0]["classes"][1]
    title_page = html.split('<section class="study"')[0]
    text = " ".join(re.sub(r"<[^>]+>", " ", title_page).split())
    assert ("Published numbers (6 over all studies): 2 reproduced (inside the band stated for each) and "
            "1 missed ; 3 not compared: 2 because the published setup differs at every scale (another "
            "network, an unstated measure); 1 for want of a band or of a finished matching run (each one's "
            "reason is in its study).") in text
    assert "Study gamma" not in title_page.split("Scorecard")[1].split("</table>")[0]


def test_title_page_has_no_scorecard_without_expectations(three_studies):
    results, studies = three_studies
    html = render_html(report_context(fake_plan([studies[2]]), results), TEMPLATE, STYLE)
    assert "Scorecard" not in html and 'class="summary scorecard"' not in html
    assert '<section class="title-page">' in html


# ---------------------------------------------------------------- background parts

BACKGROUND = [{"title": "Stacks of small convolutions", "source": "Seed 003, problem 3.3",
               "paragraphs": ["Stacked 3x3 layers see 7x7.", "They have fewer weights."]},
              {"title": "The inception module", "source": "Seed 003, problem 3.4",
               "paragraphs": ["Naive modules grow."]}]


def arch_fragment(tmp_path) -> dict:
    """The arch analysis's fragment from a section.json (what bnlab.analyses.architecture.section writes), not computed."""
    from bnlab.analyses.arch import SECTION_JSON, section_fragment

    out = tmp_path / "arch_out"
    out.mkdir()
    write_json(out / SECTION_JSON, {"tables": [{"caption": "Params", "header": ["a"], "rows": [["1"]]}],
                                    "figures": [], "findings": ["VGG19 has 143,667,240 parameters."],
                                    "background": BACKGROUND})
    return section_fragment(SimpleNamespace(out=out))


def test_arch_background_is_no_longer_in_its_findings(tmp_path):
    frag = arch_fragment(tmp_path)
    assert frag["findings"] == ["VGG19 has 143,667,240 parameters."]
    assert frag["background"] == BACKGROUND


def sections_of(html: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in
            re.finditer(r'<section class="study" id="([^"]+)">(.*?)</section>', html, re.S)}


def test_background_parts_render_as_blocks_before_the_tables(tmp_path):
    results = tmp_path / "res"
    write_fragment(results, "arch", "arch", arch_fragment(tmp_path))
    # any analysis may write background parts, and one without them still renders
    write_fragment(results, "ics", "summary", fragment(findings=["ics summary finding"],
                                                       tables=[], stats={"n_runs": 1}))
    write_fragment(results, "ics", "ics", {**fragment(findings=["ICS grows."]),
                                           "background": [{"title": "Internal covariate shift", "source":
                                                           "Ioffe & Szegedy 2015", "paragraphs": ["ICS is..."]}]})
    studies = [make_study("arch", ["arch"]), make_study("ics", ["summary", "ics"])]
    context = report_context(fake_plan(studies), results)
    assert [b["analysis"] for b in context["studies"][1]["background"]] == ["ics"]
    html = render_html(context, TEMPLATE, STYLE)
    arch, ics = sections_of(html)["arch"], sections_of(html)["ics"]
    findings = re.search(r'<ul class="findings">(.*?)</ul>', arch, re.S).group(1)
    assert "VGG19 has 143,667,240 parameters." in findings
    blocks = re.findall(r'<div class="background">(.*?)</div>', arch, re.S)
    assert len(blocks) == 2
    assert "<h3>Background: Stacks of small convolutions</h3>" in blocks[0]
    assert "<p>Stacked 3x3 layers see 7x7.</p>" in blocks[0] and "<p>They have fewer weights.</p>" in blocks[0]
    assert "Source: Seed 003, problem 3.3" in blocks[0]
    assert "<h3>Background: The inception module</h3>" in blocks[1]
    for paragraph in ("Stacked 3x3", "fewer weights", "Naive modules grow"):
        assert paragraph not in findings
    # after the findings, before the analysis's tables
    assert arch.index('<ul class="findings">') < arch.index('<div class="background">') < arch.index("<table")
    assert "<h3>Background: Internal covariate shift</h3>" in ics and "Source: Ioffe &amp; Szegedy 2015" in ics


def test_a_table_longer_than_a_page_may_break_and_starts_under_its_caption(tmp_path):
    """Kept whole, a table taller than what is left of a page moves on and leaves its caption alone."""
    from bnlab.analyses.registry import table
    from bnlab.report.render import LONG_TABLE_ROWS

    results = tmp_path / "res"
    short = table("Short table", ["a"], [[i] for i in range(LONG_TABLE_ROWS)])
    long = table("Long table", ["a"], [[i] for i in range(LONG_TABLE_ROWS + 1)])
    write_fragment(results, "s", "summary", fragment(tables=[short, long], stats={"n_runs": 1}))
    html = render_html(report_context(fake_plan([make_study("s", ["summary"])]), results), TEMPLATE, STYLE)
    blocks = re.findall(r'<div class="table-block( long)?">\s*<table class="summary( long)?">\s*<caption>([^<]+)',
                        html)
    assert [(b[0], b[1], b[2].split(". ", 1)[1]) for b in blocks] == [("", "", "Short table"),
                                                                       (" long", " long", "Long table")]
    assert ".table-block.long, table.summary.long { break-inside: auto;" in STYLE.read_text()


def test_the_measures_appendix_names_and_defines_each_measure_once(three_studies):
    from bnlab.analyses.measures import MEASURES

    results, studies = three_studies
    html = render_html(report_context(fake_plan(studies), results), TEMPLATE, STYLE)
    appendix = re.search(r'<section class="appendix" id="measures">(.*?)</section>', html, re.S).group(1)
    for measure in MEASURES.values():
        assert appendix.count(f"<tr><td>{measure.name}</td>") == 1, measure.name
