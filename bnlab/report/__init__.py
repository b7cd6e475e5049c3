"""The PDF report: context from aggregated tables, jinja2 HTML, weasyprint PDF."""
