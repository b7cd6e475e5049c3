# Figures, one rule per figure kind; each reads aggregated tables only.


rule learning_curves:
    input:
        runs=f"{R}/studies/{{study}}/runs.csv",
        curves=f"{R}/studies/{{study}}/curves.parquet",
    output:
        report(f"{R}/studies/{{study}}/learning_curves.png", category="{study}"),
    log:
        f"{R}/logs/learning_curves/{{study}}.log",
    params:
        title=lambda wc: PLAN.studies[wc.study].title,
        dataset_note=lambda wc: PLAN.studies[wc.study].dataset_note(),
    localrule: True
    conda:
        "../envs/bnlab.yaml"
    script:
        "../scripts/plot_learning_curves.py"
