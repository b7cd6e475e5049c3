# Studies that train nothing: one rule writes the whole report section
# (tables, figures, findings) as section.json in the study's folder.


rule study_section:
    output:
        f"{R}/studies/{{study}}/section.json",
    log:
        f"{R}/logs/study_section/{{study}}.log",
    params:
        study=lambda wc: PLAN.studies[wc.study],
        models_used=MODELS_USED,
    localrule: True
    conda:
        "../envs/bnlab.yaml"
    script:
        "../scripts/study_section.py"
