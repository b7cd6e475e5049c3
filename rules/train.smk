# One job per run: train and write the run-folder contract.


rule train:
    input:
        data=f"{R}/data/{{dataset}}.pt",
    output:
        **{name.split(".")[0]: f"{RUN_DIR}/{name}" for name in RUN_OUTPUTS},
    log:
        f"{RUN_DIR}/train.log",
    params:
        device=EXEC["device"],
    threads: EXEC["threads_per_run"]
    resources:
        mem_mb=EXEC["mem_mb"],
    conda:
        "../envs/bnlab.yaml"
    script:
        "../scripts/train.py"
