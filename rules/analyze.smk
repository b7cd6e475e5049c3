# Per-study aggregation: run table, summary over seeds, curve data.


rule summarize_study:
    input:
        metrics=lambda wc: study_run_files(wc.study, "metrics.json"),
        history=lambda wc: study_run_files(wc.study, "history.parquet"),
    output:
        runs=f"{R}/studies/{{study}}/runs.csv",
        summary=f"{R}/studies/{{study}}/summary.csv",
        curves=f"{R}/studies/{{study}}/curves.parquet",
    log:
        f"{R}/logs/summarize_study/{{study}}.log",
    params:
        study=lambda wc: PLAN.studies[wc.study],
        run_root=f"{R}/runs",
    localrule: True
    conda:
        "../envs/bnlab.yaml"
    script:
        "../scripts/summarize_study.py"
