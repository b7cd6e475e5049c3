#!/usr/bin/env bash
# GPU check of fused training: a short slice of full.yaml's architectures (a few hundred optimizer
# steps each), one run at a time and fused, with throughput, GPU utilisation and the fused ratio.
# Needs a CUDA device; takes under 5 minutes on one modern GPU.
#
#   bash bench/gpu_check.sh            # from the repository root, with the venv set up (./setup.sh)
#   OUT=somewhere bash bench/gpu_check.sh
#
# Data: Fashion-MNIST (Debian's dataset-fashion-mnist, or BNLAB_DATA_DIR with the IDX files); without
# it the check falls back to scikit-learn's digits and the MLPs only (8x8 images are too small for
# LeNet-5 and the VGG).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: no CUDA device here; run it on a machine with a GPU')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
# GPU utilisation and memory twice a second while the benchmark runs
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -lms 500 \
  > "$OUT/gpu_util.csv" &
SAMPLER=$!
trap 'kill $SAMPLER 2>/dev/null || true' EXIT

DATASET=fashion_mnist MODELS=full
if ! "$PY" - <<'PYEOF'
import os, sys
from bnlab.data import prepare_dataset
try:
    prepare_dataset("fashion_mnist", "/tmp/bnlab_gpu_check_probe.pt", data_dir=os.environ.get("BNLAB_DATA_DIR"),
                    val_size=5000, log=lambda _: None)
except Exception as err:
    print(f"gpu_check: Fashion-MNIST not available ({err}); using digits and the MLPs", file=sys.stderr)
    sys.exit(1)
PYEOF
then
  DATASET=digits MODELS=mlp_50x50_bn,mlp_5x256_tanh
fi
time "$PY" bench/fused.py --device cuda --dataset "$DATASET" --models "$MODELS" --ks 1,8,16 --repeats 1 \
  --steps-scale 8 ${BNLAB_DATA_DIR:+--data-dir "$BNLAB_DATA_DIR"} --out "$OUT/fused_gpu.json"
kill $SAMPLER 2>/dev/null || true
"$PY" - "$OUT/gpu_util.csv" <<'PYEOF'
import statistics, sys
rows = [line.split(",") for line in open(sys.argv[1]) if line.strip()]
util = [float(r[1]) for r in rows if len(r) > 2]
mem = [float(r[2]) for r in rows if len(r) > 2]
if util:
    print(f"GPU utilisation over {len(util)} samples: median {statistics.median(util):.0f}%, max {max(util):.0f}%; "
          f"memory used max {max(mem):.0f} MiB")
PYEOF
