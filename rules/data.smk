# One cached tensor file per dataset (uint8 images, labels, split, stats).


rule prepare_data:
    output:
        f"{R}/data/{{dataset}}.pt",
    log:
        f"{R}/logs/prepare_data/{{dataset}}.log",
    params:
        data_dir=PLAN.config["data"]["data_dir"],
        download=PLAN.config["data"]["download"],
        val_size=PLAN.config["data"]["val_size"],
        split_seed=PLAN.config["data"]["split_seed"],
    resources:
        mem_mb=4000,
    conda:
        "../envs/bnlab.yaml"
    script:
        "../scripts/prepare_data.py"
