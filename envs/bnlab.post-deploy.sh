#!/usr/bin/env bash
# Snakemake runs this once, inside the conda environment of envs/bnlab.yaml, right after creating it
# (--sdm conda; the file's name ties it to that environment). It makes the checkout's bnlab importable
# there: the environment file cannot name the checkout (Snakemake copies it to .snakemake/conda/, where a
# relative path such as `-e ..` points into .snakemake), but this script runs in Snakemake's working
# directory, the checkout, and records its absolute path in a .pth file of the environment's Python.
set -euo pipefail
checkout="$(pwd -P)"
if [ ! -f "$checkout/bnlab/__init__.py" ] || [ ! -f "$checkout/Snakefile" ]; then
    echo "bnlab's conda environment: run snakemake from the bnlab checkout ($checkout has no bnlab/ and Snakefile)" >&2
    exit 1
fi
site_packages="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$checkout" > "$site_packages/bnlab-checkout.pth"
python -c 'import bnlab, sys; print("bnlab from", bnlab.__file__, "in", sys.prefix)'
