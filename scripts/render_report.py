"""Snakemake script: render the report (HTML via jinja2, PDF via weasyprint; bnlab.report.render).

In a fork of the warm server when the workflow started one (bnlab.warm),
otherwise in this process.
"""

import sys

from bnlab.warm import submit

kwargs = {"plan": snakemake.params.plan, "html_path": str(snakemake.output.html),  # noqa: F821
          "pdf_path": str(snakemake.output.pdf), "template": str(snakemake.input.template),  # noqa: F821
          "style": str(snakemake.input.style), "partial": snakemake.params.get("partial", False)}  # noqa: F821
code = submit("bnlab.report.render:render_report_job", kwargs, snakemake.log[0])  # noqa: F821
if code is None:  # no warm server to ask: render here
    sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
    from bnlab.report.render import render_report_job

    render_report_job(**kwargs)
elif code != 0:
    sys.exit(code)  # the report's log has the traceback
