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
        axes=lambda wc: PLAN.studies[wc.study].axes,
    localrule: True
    conda:
        "../envs/bnlab.yaml"
    script:
        "../scripts/plot_learning_curves.py"


rule bn_curves:
    input:
        runs=f"{R}/studies/{{study}}/runs.csv",
        curves=f"{R}/studies/{{study}}/curves.parquet",
    output:
        acc=report(f"{R}/studies/{{study}}/bn_curves_acc.png", category="{study}"),
        loss=report(f"{R}/studies/{{study}}/bn_curves_loss.png", category="{study}"),
    log:
        f"{R}/logs/bn_curves/{{study}}.log",
    params:
        title=lambda wc: PLAN.studies[wc.study].title,
        dataset_note=lambda wc: PLAN.studies[wc.study].dataset_note(),
        axes=lambda wc: PLAN.studies[wc.study].axes,
    localrule: True
    conda:
        "../envs/bnlab.yaml"
    script:
        "../scripts/plot_bn_curves.py"
