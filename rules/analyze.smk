# Per-study aggregation: run table, summary over seeds, curve data, and the
# optional analyses a study declares (speedup, bn_params).


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


rule speedup:
    input:
        runs=f"{R}/studies/{{study}}/runs.csv",
        curves=f"{R}/studies/{{study}}/curves.parquet",
    output:
        per_seed=f"{R}/studies/{{study}}/speedup_per_seed.csv",
        paired=f"{R}/studies/{{study}}/speedup.csv",
    log:
        f"{R}/logs/speedup/{{study}}.log",
    params:
        axes=lambda wc: PLAN.studies[wc.study].axes,
    localrule: True
    conda:
        "../envs/bnlab.yaml"
    script:
        "../scripts/speedup.py"


rule landscape:
    input:
        runs=f"{R}/studies/{{study}}/runs.csv",
        steps=lambda wc: study_run_files(wc.study, "steps.parquet"),
        probes=lambda wc: study_run_files(wc.study, "probes.parquet"),
    output:
        course=report(f"{R}/studies/{{study}}/landscape_course.png", category="{study}"),
        probes=report(f"{R}/studies/{{study}}/landscape_probes.png", category="{study}"),
        table=f"{R}/studies/{{study}}/landscape.csv",
    log:
        f"{R}/logs/landscape/{{study}}.log",
    params:
        axes=lambda wc: PLAN.studies[wc.study].axes,
        run_root=f"{R}/runs",
        title=lambda wc: PLAN.studies[wc.study].title,
        dataset_note=lambda wc: PLAN.studies[wc.study].dataset_note(),
    localrule: True
    conda:
        "../envs/bnlab.yaml"
    script:
        "../scripts/landscape.py"


rule lr_range:
    input:
        runs=f"{R}/studies/{{study}}/runs.csv",
        history=lambda wc: study_run_files(wc.study, "history.parquet"),
        steps=lambda wc: study_run_files(wc.study, "steps.parquet"),
    output:
        figure=report(f"{R}/studies/{{study}}/lr_range.png", category="{study}"),
        table=f"{R}/studies/{{study}}/lr_range.csv",
    log:
        f"{R}/logs/lr_range/{{study}}.log",
    params:
        axes=lambda wc: PLAN.studies[wc.study].axes,
        fixed=lambda wc: study_fixed_params(wc.study),
        run_root=f"{R}/runs",
        title=lambda wc: PLAN.studies[wc.study].title,
        dataset_note=lambda wc: PLAN.studies[wc.study].dataset_note(),
    localrule: True
    conda:
        "../envs/bnlab.yaml"
    script:
        "../scripts/lr_range.py"


rule bn_params:
    input:
        runs=f"{R}/studies/{{study}}/runs.csv",
        bn=lambda wc: study_run_files(wc.study, "bn_params.parquet"),
    output:
        layers=f"{R}/studies/{{study}}/bn_layers.csv",
        params=f"{R}/studies/{{study}}/bn_params.parquet",
        violins=report(f"{R}/studies/{{study}}/bn_violins.png", category="{study}"),
    log:
        f"{R}/logs/bn_params/{{study}}.log",
    params:
        axes=lambda wc: PLAN.studies[wc.study].axes,
        run_root=f"{R}/runs",
        title=lambda wc: f"{PLAN.studies[wc.study].title} ({PLAN.studies[wc.study].dataset_note()})",
    localrule: True
    conda:
        "../envs/bnlab.yaml"
    script:
        "../scripts/bn_params.py"


rule batch_growth:
    input:
        runs=f"{R}/studies/{{study}}/runs.csv",
        metrics=lambda wc: study_run_files(wc.study, "metrics.json"),
        steps=lambda wc: study_run_files(wc.study, "steps.parquet"),
    output:
        figure=report(f"{R}/studies/{{study}}/batch_growth.png", category="{study}"),
        runs=f"{R}/studies/{{study}}/batch_growth_runs.csv",
        table=f"{R}/studies/{{study}}/batch_growth.csv",
    log:
        f"{R}/logs/batch_growth/{{study}}.log",
    params:
        study=lambda wc: PLAN.studies[wc.study],
        run_root=f"{R}/runs",
    localrule: True
    conda:
        "../envs/bnlab.yaml"
    script:
        "../scripts/batch_growth.py"
