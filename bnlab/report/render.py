"""Render the report: jinja2 template -> HTML file -> PDF with weasyprint."""

from __future__ import annotations

import logging
from pathlib import Path

import jinja2

from bnlab.config import Plan
from bnlab.report.context import report_context


# Rows above which a table may break across pages (about what a page below a caption holds at 8 pt): a
# table kept whole that is taller than what is left of a page moves on and leaves its caption behind.
LONG_TABLE_ROWS = 20


def render_html(context: dict, template: str | Path, style: str | Path) -> str:
    template = Path(template)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(template.parent), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    return env.get_template(template.name).render(**context, css=Path(style).read_text(),
                                                  LONG_TABLE_ROWS=LONG_TABLE_ROWS)


def render_report(plan: Plan, *, html_path: str | Path, pdf_path: str | Path, template: str | Path,
                  style: str | Path, partial: bool = False) -> None:
    """The strict report from every analysis folder, or (partial=True) one from the runs that finished."""
    import weasyprint

    logging.getLogger("fontTools").setLevel(logging.WARNING)  # font subsetting chatter
    results = Path(plan.config["results"])
    if partial:
        from bnlab.report.partial import compute_partial

        root, failed = compute_partial(plan, results)
        context = report_context(plan, results, studies_root=root, partial=failed)
    else:
        context = report_context(plan, results)
    html = render_html(context, template, style)
    # The HTML sits in the results folder and names its images relative to it.
    Path(html_path).write_text(html)
    weasyprint.HTML(string=html, base_url=str(results.resolve())).write_pdf(pdf_path)
    print(f"report written: {pdf_path}")


def render_report_job(plan: dict, html_path: str, pdf_path: str, template: str, style: str,
                      partial: bool = False) -> None:
    """One Snakemake report job (scripts/render_report.py), `plan` as Plan.to_data() gives it: in a fork of
    the warm server (bnlab.warm), which has torch, pandas and matplotlib imported already, or in its own
    process. The report is the workflow's last job, with one core idle beside it."""
    render_report(Plan.from_data(plan), html_path=html_path, pdf_path=pdf_path, template=template, style=style,
                  partial=partial)
