"""Snakemake script: render the report (HTML via jinja2, PDF via weasyprint)."""

import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from bnlab.config import Plan  # noqa: E402
from bnlab.report.render import render_report  # noqa: E402

render_report(
    Plan.from_data(snakemake.params.plan),  # noqa: F821
    html_path=snakemake.output.html,  # noqa: F821
    pdf_path=snakemake.output.pdf,  # noqa: F821
    template=snakemake.input.template,  # noqa: F821
    style=snakemake.input.style,  # noqa: F821
    partial=snakemake.params.get("partial", False),  # noqa: F821
)
