# One job per run: train and write the run-folder contract.


rule train:
    input:
        data=f"{R}/data/{{dataset}}.pt",
        # lr / lr_min "pick-<study>": that study's range-test picks (rule lr_picks); l2 best-/draw<i>-<study>:
        # that search stage's candidates (rule search_picks). A new outcome there retrains the runs here.
        picks=lambda wc: pick_inputs(spec_of(wc)),
    output:
        **{name.split(".")[0]: f"{RUN_DIR}/{name}" for name in RUN_OUTPUTS},
    log:
        f"{RUN_DIR}/train.log",
    priority: train_priority  # the critical path first (rules/common.smk)
    conda:
        "../envs/bnlab.yaml"
    threads: EXEC["threads_per_run"]
    resources:
        # execution's values, raised by a study's `resources` (bnlab.config.Plan.run_resources)
        mem_mb=lambda wc: train_resources(wc)["mem_mb"],
        runtime=lambda wc: train_resources(wc)["runtime_min"],
        # Cluster GPUs (the slurm executor asks for them when > 0) ...
        gpu=lambda wc: train_resources(wc)["gpus_per_run"],
        # ... and, on a one-GPU workstation (profiles/gpu), one of the slots
        # that limit how many training jobs share the GPU.
        gpu_slots=1 if EXEC["device"] in ("cuda", "auto") else 0,
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
    priority: PICKS_PRIORITY  # on the critical path: runs at the picked rates wait for it
    localrule: True
    conda:
        "../envs/bnlab.yaml"
    params:
        # the runs alone: a new study title must not rewrite the picks (and so retrain their users)
        runs=lambda wc: PLAN.studies[wc.study].runs,
        run_root=f"{R}/runs",
    script:
        "../scripts/lr_picks.py"


# A search stage's candidates (bnlab/search.py): one row per run of the study with the value it trained
# with and its validation accuracy, read by the next stage's runs (best-<study>, draw<i>-<study>) when they
# start. Its own job for the same reason as lr_picks: the search analysis reads the runs on its own.
rule search_picks:
    input:
        metrics=lambda wc: study_run_files(wc.study, "metrics.json"),
        code=lambda wc: code_files("bnlab.search"),
    output:
        f"{R}/picks/{{study}}/{SEARCH_TABLE}",
    log:
        f"{R}/logs/search_picks/{{study}}.log",
    priority: PICKS_PRIORITY  # on the critical path: the next stage waits for it
    localrule: True
    conda:
        "../envs/bnlab.yaml"
    params:
        runs=lambda wc: PLAN.studies[wc.study].runs,
        run_root=f"{R}/runs",
    script:
        "../scripts/search_picks.py"


# Seconds per optimizer step of each network a study trains, timed alone (bnlab/step_times.py): what the
# speedup analysis turns its steps into time with, since the runs' own clocks ran beside other jobs. First
# of all jobs, and on every core a local run has (TIMING_THREADS), so that nothing runs beside it.
rule step_times:
    input:
        code=lambda wc: code_files("bnlab.step_times"),
    output:
        f"{R}/timing/{{study}}/{STEP_TIMES_TABLE}",
    log:
        f"{R}/logs/step_times/{{study}}.log",
    priority: PICKS_PRIORITY + 1
    conda:
        "../envs/bnlab.yaml"
    threads: TIMING_THREADS
    params:
        runs=lambda wc: [asdict(run) for run in PLAN.studies[wc.study].runs],
        data=PLAN.config["data"],
        device=EXEC["device"],
        threads_per_run=EXEC["threads_per_run"],
    script:
        "../scripts/step_times.py"


# Fused groups (execution.fuse, bnlab/fusion.py): runs of one architecture and batch plan train
# as one fused model in one job. Each group is a rule of its own whose outputs are its members'
# run folders, written out in full, so Snakemake prefers it to `train` for those files (a rule
# without wildcards wins an ambiguity) and every member stays a separate output. Its outputs are the
# members not yet finished: adding a seed never retrains runs that are done (FUSED_GROUPS, common.smk).
for _group in FUSED_GROUPS:
    _resources = [PLAN.run_resources(r) for r in _group.runs]
    _picks = sorted({table for r in _group.runs for table in pick_inputs(r)})

    rule:
        name:
            _group.name
        input:
            data=f"{R}/data/{_group.runs[0].dataset}.pt",
            picks=_picks,
        output:
            [f"{run_dir(r)}/{name}" for r in _group.runs for name in RUN_OUTPUTS],
        log:
            [f"{run_dir(r)}/train.log" for r in _group.runs],
        priority: max(run_priority(r) for r in _group.runs)
        conda:
            "../envs/bnlab.yaml"
        # no params: a finished member is planned by `train` later, which has none (Snakemake reruns a job
        # whose params changed); the script reads the members back from their folder names
        threads: EXEC["threads_per_run"]
        resources:
            # the members share one process and device: the largest of their requests
            mem_mb=max(r["mem_mb"] for r in _resources),
            runtime=max(r["runtime_min"] for r in _resources),
            gpu=max(r["gpus_per_run"] for r in _resources),
            gpu_slots=1 if EXEC["device"] in ("cuda", "auto") else 0,
        script:
            "../scripts/train.py"


# The fused rules run train's script but are written inside the loop: give them train's code record, or a
# finished member planned by `train` later would be retrained for "code changed" (bnlab/snakemake_private.py).
share_code_record(workflow, [group.name for group in FUSED_GROUPS], like="train")
