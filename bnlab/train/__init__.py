"""Training: one run from a RunSpec and a prepared dataset to a run folder."""

from bnlab.train.run import execute_run, resolve_device

__all__ = ["execute_run", "resolve_device"]
