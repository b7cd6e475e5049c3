# The report: every study's tables and figures -> HTML -> PDF (weasyprint).


rule report:
    input:
        studies=[f for study in PLAN.studies for f in study_outputs(study)],
        template="report/template.html.j2",
        style="report/style.css",
    output:
        html=f"{R}/report.html",
        pdf=REPORT_PDF,
    log:
        f"{R}/logs/report.log",
    params:
        plan=PLAN,
    localrule: True
    conda:
        "../envs/bnlab.yaml"
    script:
        "../scripts/render_report.py"
