# The report: every study's analysis fragments -> HTML -> PDF (weasyprint).


rule report:
    input:
        studies=[f for study in PLAN.studies for f in study_outputs(study)],
        template="report/template.html.j2",
        style="report/style.css",
        code=report_code(),
    output:
        # the HTML names its figures by their paths in the results folder, which `snakemake --report`'s zip
        # does not keep: the report shows the PDF, and the figures under their studies (rules/analyze.smk)
        html=f"{R}/report.html",
        pdf=report(REPORT_PDF, caption="../report/snakemake/report.rst", category="Report"),
    log:
        f"{R}/logs/report.log",
    localrule: True
    conda:
        "../envs/bnlab.yaml"
    params:
        plan=PLAN.to_data(),  # plain data: a changed title or claim re-renders (rules/analyze.smk)
    script:
        "../scripts/render_report.py"


# A report from the runs that finished (README, "When a run fails"): its inputs are the
# runs that exist now, so it re-renders when more finish; the strict report above
# stays what `snakemake` builds.
rule partial_report:
    input:
        finished=lambda wc: [f for f in (f"{run_dir(r)}/metrics.json" for r in PLAN.runs) if os.path.exists(f)],
        template="report/template.html.j2",
        style="report/style.css",
        code=sorted(set(report_code()) | {f for a in list_analyses() for f in analysis_code(a)}),
    output:
        html=f"{R}/report-partial.html",
        pdf=f"{R}/report-partial.pdf",
    log:
        f"{R}/logs/report-partial.log",
    localrule: True
    conda:
        "../envs/bnlab.yaml"
    params:
        plan=PLAN.to_data(),
        partial=True,
    script:
        "../scripts/render_report.py"
