# Analyses: one generic rule over {study}/{analysis}. The registry entry
# (bnlab/analyses/<name>.py) declares what a job reads; the job writes the
# analysis folder results/studies/<study>/<analysis>/, fragment.json included.


rule analysis:
    input:
        unpack(lambda wc: analysis_inputs(wc.study, wc.analysis)),
    output:
        directory(f"{R}/studies/{{study}}/{{analysis}}"),
    log:
        f"{R}/logs/analysis/{{study}}/{{analysis}}.log",
    localrule: True
    conda:
        "../envs/bnlab.yaml"
    params:
        # re-run when the study's text or the analysis's options change (titles are drawn in figures)
        study=lambda wc: PLAN.studies[wc.study],
        options=lambda wc: PLAN.studies[wc.study].analysis_options[wc.analysis],
        extra=lambda wc: plan_extra(PLAN, PLAN.studies[wc.study], wc.analysis),
        plugins=PLAN.config["analysis_plugins"],
    script:
        "../scripts/analysis.py"
