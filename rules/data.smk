# One cached tensor file per dataset (uint8 images, labels, split, stats).
from bnlab.data.limits import val_size_for


rule prepare_data:
    output:
        f"{R}/data/{{dataset}}.pt",
    log:
        f"{R}/logs/prepare_data/{{dataset}}.log",
    # every run of the dataset waits for it: ahead of any ready training job (rules/common.smk ranks
    # those by size), or the longest runs, on the dataset prepared last, would start last
    priority: PICKS_PRIORITY
    conda:
        "../envs/bnlab.yaml"
    resources:
        mem_mb=4000,
    params:
        data_dir=PLAN.config["data"]["data_dir"],
        download=PLAN.config["data"]["download"],
        # a number for every dataset, or per dataset (bnlab.data.limits.val_size_for)
        val_size=lambda wildcards: val_size_for(PLAN.config["data"], wildcards.dataset),
        split_seed=PLAN.config["data"]["split_seed"],
    script:
        "../scripts/prepare_data.py"
