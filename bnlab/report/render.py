"""Render the report: jinja2 template -> HTML file -> PDF with weasyprint."""

from __future__ import annotations

import logging
from pathlib import Path

import jinja2

from bnlab.config import Plan
from bnlab.report.context import report_context


def render_html(context: dict, template: str | Path, style: str | Path) -> str:
    template = Path(template)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(template.parent), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    return env.get_template(template.name).render(**context, css=Path(style).read_text())


def render_report(plan: Plan, *, html_path: str | Path, pdf_path: str | Path, template: str | Path,
                  style: str | Path) -> None:
    import weasyprint

    logging.getLogger("fontTools").setLevel(logging.WARNING)  # font subsetting chatter
    results = Path(plan.config["results"])
    html = render_html(report_context(plan, results), template, style)
    Path(html_path).write_text(html)
    weasyprint.HTML(string=html, base_url=str(results.resolve())).write_pdf(pdf_path)
    print(f"report written: {pdf_path}")
