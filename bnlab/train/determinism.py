"""Deterministic training and a truthful record of it: what torch and the environment have in force.

execute_run calls prepare_determinism(device) before any tensor work of a run,
wraps the training in determinism_warnings(), and writes determinism_state()
plus the warnings caught into metrics.json under "determinism".

warn_only=True means an op without a deterministic implementation warns rather
than fails, so "deterministic_algorithms: true" alone does not say the run was
reproducible: the record adds the warn-only flag, the cuBLAS workspace setting,
cuDNN's flags, and the text of every such warning torch raised during training
(an empty list: none ran).
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager

import torch

# cuBLAS's workspace setting for reproducible GEMMs (CUDA >= 10.2): a fixed workspace per stream,
# 8 buffers of 4096 KiB (":16:8", the other value torch accepts, is smaller and slower).
CUBLAS_WORKSPACE_ENV = "CUBLAS_WORKSPACE_CONFIG"
CUBLAS_WORKSPACE = ":4096:8"
# What torch says when an op without a deterministic implementation runs under warn_only=True;
# cuBLAS without CUBLAS_WORKSPACE_CONFIG is "... but this operation is not deterministic because it uses CuBLAS".
NONDETERMINISTIC_WARNINGS = ("does not have a deterministic implementation", "is not deterministic")


def prepare_determinism(dev: torch.device) -> None:
    """Deterministic algorithms for a run on `dev`; call before the run's first tensor work.

    torch.use_deterministic_algorithms(True, warn_only=True) everywhere. On CUDA also:
    - CUBLAS_WORKSPACE_CONFIG=:4096:8 where the environment does not set it.
      Without a fixed workspace, cuBLAS may split a GEMM's reduction differently
      from call to call (CUDA >= 10.2), so matrix products (every linear layer)
      are not reproducible, and under warn_only torch merely warns. cuBLAS reads
      the variable when it creates its workspace, at the process's first GEMM on
      the device, so it has to be in the environment before any CUDA work: hence
      here, before the model and data are moved to the device (a fork of the warm
      server has done no CUDA work, bnlab/warm.py). A value set by the user is kept.
    - cuDNN: no benchmarking (it may pick a different algorithm on each run) and
      only deterministic algorithms.
    """
    if dev.type == "cuda":
        if not os.environ.get(CUBLAS_WORKSPACE_ENV):
            os.environ[CUBLAS_WORKSPACE_ENV] = CUBLAS_WORKSPACE
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


def determinism_state() -> dict:
    """What is in force now, read back from torch and the environment (not what was asked for)."""
    return {
        "deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled()),
        "deterministic_warn_only": bool(torch.is_deterministic_algorithms_warn_only_enabled()),
        "cublas_workspace_config": os.environ.get(CUBLAS_WORKSPACE_ENV) or None,
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
    }


@contextmanager
def determinism_warnings(found: list[str]):
    """Collect into `found` (distinct texts, in order) torch's warnings that an op ran non-deterministically.

    Each warning is caught once per place it comes from (Python's "default"
    action, whatever the filters outside say, so an outer "ignore" cannot hide
    one); every other warning is passed on afterwards to the filters outside.
    """
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as recorded:
            caught = recorded
            warnings.simplefilter("default")
            yield found
    finally:
        others = []
        for w in caught:
            text = str(w.message)
            if any(marker in text for marker in NONDETERMINISTIC_WARNINGS):
                if text not in found:
                    found.append(text)
            else:
                others.append(w)
        for w in others:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
