# One job per run: train and write the run-folder contract.


rule train:
    input:
        data=f"{R}/data/{{dataset}}.pt",
        # lr / lr_min "pick-<study>": that study's range-test picks (rule lr_picks),
        # so a new range test retrains the runs that use its rates.
        picks=lambda wc: [f"{R}/picks/{v[len(PICK_PREFIX):]}/lr_range.csv"
                          for v in dict.fromkeys((wc.lr, wc.lrmin)) if is_pick(v)],
    output:
        **{name.split(".")[0]: f"{RUN_DIR}/{name}" for name in RUN_OUTPUTS},
    log:
        f"{RUN_DIR}/train.log",
    threads: EXEC["threads_per_run"]
    priority: train_priority  # the critical path first (rules/common.smk)
    resources:
        # execution's values, raised by a study's `resources` (bnlab.config.Plan.run_resources)
        mem_mb=lambda wc: train_resources(wc)["mem_mb"],
        runtime=lambda wc: train_resources(wc)["runtime_min"],
        # Cluster GPUs (the slurm executor asks for them when > 0) ...
        gpu=lambda wc: train_resources(wc)["gpus_per_run"],
        # ... and, on a one-GPU workstation (profiles/gpu), one of the slots
        # that limit how many training jobs share the GPU.
        gpu_slots=1 if EXEC["device"] in ("cuda", "auto") else 0,
    conda:
        "../envs/bnlab.yaml"
    script:
        "../scripts/train.py"


# The picks a pick-<study> run trains with, from that study's range-test runs. Its own job
# (bnlab/lr_picks.py), apart from the lr_range analysis, so editing analysis or report
# code never retrains those runs; editing the pick rule does.
rule lr_picks:
    input:
        metrics=lambda wc: study_run_files(wc.study, "metrics.json"),
        history=lambda wc: study_run_files(wc.study, "history.parquet"),
        steps=lambda wc: study_run_files(wc.study, "steps.parquet"),
        code=lambda wc: code_files("bnlab.lr_picks"),
    output:
        f"{R}/picks/{{study}}/lr_range.csv",
    log:
        f"{R}/logs/lr_picks/{{study}}.log",
    params:
        # the runs alone: a new study title must not rewrite the picks (and so retrain their users)
        runs=lambda wc: PLAN.studies[wc.study].runs,
        run_root=f"{R}/runs",
    priority: 2  # on the critical path: runs at the picked rates wait for it
    localrule: True
    conda:
        "../envs/bnlab.yaml"
    script:
        "../scripts/lr_picks.py"
