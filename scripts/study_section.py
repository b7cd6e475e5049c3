"""Snakemake script: the report section of a study that trains nothing."""

import sys
from pathlib import Path

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

study = snakemake.params.study  # noqa: F821
out_dir = Path(snakemake.output[0]).parent  # noqa: F821
if study.kind == "arch":
    from bnlab.arch import build_section

    build_section(snakemake.params.models_used, out_dir)  # noqa: F821
elif study.kind == "gradcheck":
    from bnlab.gradcheck import build_section

    build_section(out_dir, seed=int(study.options.get("seed", 0)))
else:
    raise ValueError(f"study '{study.name}': no section builder for kind '{study.kind}'")
print(f"wrote {out_dir / 'section.json'}")
