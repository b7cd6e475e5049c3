# One job per run: train and write the run-folder contract.


rule train:
    input:
        data=f"{R}/data/{{dataset}}.pt",
        # lr / lr_min "pick-<study>": that study's lr_range analysis (its folder
        # holds the picks), so a new range test retrains the runs that use its rates.
        picks=lambda wc: [analysis_folder(v[len(PICK_PREFIX):], "lr_range")
                          for v in dict.fromkeys((wc.lr, wc.lrmin)) if is_pick(v)],
    output:
        **{name.split(".")[0]: f"{RUN_DIR}/{name}" for name in RUN_OUTPUTS},
    log:
        f"{RUN_DIR}/train.log",
    threads: EXEC["threads_per_run"]
    resources:
        mem_mb=EXEC["mem_mb"],
        runtime=EXEC["runtime_min"],
        # Cluster GPUs (the slurm executor asks for them when > 0) ...
        gpu=EXEC["gpus_per_run"],
        # ... and, on a one-GPU workstation (profiles/gpu), one of the slots
        # that limit how many training jobs share the GPU.
        gpu_slots=1 if EXEC["device"] in ("cuda", "auto") else 0,
    conda:
        "../envs/bnlab.yaml"
    script:
        "../scripts/train.py"
