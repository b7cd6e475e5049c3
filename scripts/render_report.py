"""Snakemake script: render the report (HTML via jinja2, PDF via weasyprint; bnlab.report.render).

In a fork of the warm server when the workflow started one (bnlab.warm),
otherwise in this process.
"""

from bnlab.warm import run_job

run_job("bnlab.report.render:render_report_job",
        {"plan": snakemake.params.plan, "html_path": str(snakemake.output.html),  # noqa: F821
         "pdf_path": str(snakemake.output.pdf), "template": str(snakemake.input.template),  # noqa: F821
         "style": str(snakemake.input.style), "partial": snakemake.params.get("partial", False)},  # noqa: F821
        snakemake.log[0])  # noqa: F821
