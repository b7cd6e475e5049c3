"""Training: one run from a RunSpec and a prepared dataset to a run folder.

execute_run and resolve_device are loaded on first use, so that the parts of
this package a job's own process needs (bnlab.train.job's request,
bnlab.train.warm's client) do not import torch.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what the names resolve to; bnlab.codegraph sees this edge
    from bnlab.train.run import execute_run, resolve_device

__all__ = ["execute_run", "resolve_device"]


def __getattr__(name):
    if name in __all__:
        from bnlab.train import run

        return getattr(run, name)
    raise AttributeError(f"module 'bnlab.train' has no attribute {name!r}")
