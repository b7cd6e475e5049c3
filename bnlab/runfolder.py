"""The run-folder contract: file names, atomic writers and readers.

Every file a training run leaves is written here, atomically (temp file in
the same folder, then os.replace), so a killed job never leaves a half file
that a later rule could mistake for a result. Consumers read runs through
`load_run` rather than opening files by name.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

CONFIG = "config.json"
METRICS = "metrics.json"
HISTORY = "history.parquet"
STEPS = "steps.parquet"
BN_PARAMS = "bn_params.parquet"
PROBES = "probes.parquet"
ICS = "ics.parquet"  # internal covariate shift per measured step and layer (rows only with ics_every > 0)
COADAPTATION = "coadaptation.json"  # co-adaptation proxy per hidden layer ("computed": false without coadapt)
# the final model's state_dict (CPU tensors; a diverged run's too, NaNs and all): what an analysis needs to
# look inside the trained network (seed 004's filters and feature maps) without training it again
WEIGHTS = "weights.pt"
LOG = "train.log"
# metrics.json last: it marks a finished run
OUTPUT_FILES = (CONFIG, HISTORY, STEPS, BN_PARAMS, PROBES, ICS, COADAPTATION, WEIGHTS, METRICS)


def _json_safe(value: Any) -> Any:
    """NaN/inf are not JSON; a diverged run's losses are stored as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _temp_beside(path: Path) -> str:
    """Create an empty, uniquely named temp file in path's folder and return its name.

    Created with os.open(O_EXCL, 0o666) rather than tempfile.mkstemp: mkstemp
    makes files 0600, and os.replace keeps that mode, so colleagues sharing
    the results folder could not read the run. Here the kernel applies the
    process umask (and any default ACL of the folder), as for any other output.
    """
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return str(tmp)
    raise FileExistsError(f"could not create a temp file beside {path}")


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: str | Path, data: dict) -> None:
    def w(tmp):
        with open(tmp, "w") as fh:
            json.dump(_json_safe(data), fh, indent=2, sort_keys=True)
            fh.write("\n")

    _atomic(Path(path), w)


def write_parquet(path: str | Path, frame: pd.DataFrame) -> None:
    _atomic(Path(path), lambda tmp: frame.to_parquet(tmp, index=False))


def write_weights(path: str | Path, state_dict: dict) -> None:
    """A model's state_dict as CPU tensors (torch.save), atomically."""
    import torch  # here, not at the top: readers of the other files need no torch

    cpu = {name: t.detach().to("cpu", copy=True) for name, t in state_dict.items()}
    _atomic(Path(path), lambda tmp: torch.save(cpu, tmp))


def read_json(path: str | Path) -> dict:
    with open(path) as fh:
        return json.load(fh)


@dataclass
class Run:
    """A finished run as consumers see it."""

    path: Path
    config: dict
    metrics: dict
    history: pd.DataFrame

    @property
    def diverged(self) -> bool:
        return self.metrics.get("status") == "diverged"

    def steps(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / STEPS)

    def bn_params(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / BN_PARAMS)

    def probes(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / PROBES)

    def ics(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / ICS)

    def coadaptation(self) -> dict:
        return read_json(self.path / COADAPTATION)

    def weights(self) -> dict:
        """The final model's state_dict (load it into bnlab.models.create_model with the run's params)."""
        import torch

        return torch.load(self.path / WEIGHTS, map_location="cpu", weights_only=True)


def load_run(path: str | Path) -> Run:
    path = Path(path)
    return Run(
        path=path,
        config=read_json(path / CONFIG),
        metrics=read_json(path / METRICS),
        history=pd.read_parquet(path / HISTORY),
    )
