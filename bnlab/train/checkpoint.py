"""Checkpoints: everything a killed run needs to continue exactly where it stopped.

A checkpoint holds the model and optimizer state, every random-number state
(global torch RNGs and the data-order generator), the loop's position (epoch,
batch, the epoch's permutation) and what has been recorded so far. Resuming
from it gives the same metrics as an uninterrupted run on the CPU, timings
aside. It is written atomically, lives in the run folder while the run is in
progress, and is removed once the run's files are written.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.previous.pt"  # a fused member's checkpoint before its last one (see save_checkpoint)
FORMAT = "bnlab.checkpoint/1"


@dataclass
class CheckpointPolicy:
    """When to save: every N optimizer steps and/or every S seconds (0 = never by that rule)."""

    path: Path
    every_steps: int = 0
    every_seconds: float = 0.0
    _last: float = field(default_factory=time.monotonic, repr=False)

    @property
    def enabled(self) -> bool:
        return self.every_steps > 0 or self.every_seconds > 0

    def due(self, step: int) -> bool:
        if self.every_steps > 0 and step % self.every_steps == 0:
            return True
        return self.every_seconds > 0 and time.monotonic() - self._last >= self.every_seconds

    def saved(self) -> None:
        self._last = time.monotonic()


def rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def previous_path(path: str | Path) -> Path:
    return Path(path).with_name(PREVIOUS)


def save_checkpoint(path: str | Path, payload: dict[str, Any], keep_previous: bool = False) -> None:
    """torch.save to a temp file beside `path`, then rename: never a half checkpoint.

    keep_previous moves the checkpoint being replaced aside first. The members of a fused group are saved
    one after another, so a kill between two of those saves leaves some members one checkpoint ahead; with
    the previous one kept, every member still has a checkpoint at the step before and the group resumes
    from there instead of starting over.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save({"format": FORMAT, **payload}, tmp)
        if keep_previous and path.exists():
            os.replace(path, previous_path(path))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_checkpoint(path: str | Path, params: dict[str, str], log=print) -> dict[str, Any] | None:
    """The checkpoint at `path` if it exists and belongs to a run with these parameters."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a damaged checkpoint costs a restart, never the run
        log(f"ignoring unreadable checkpoint {path}: {err}")
        return None
    if payload.get("format") != FORMAT or payload.get("params") != params:
        log(f"ignoring checkpoint {path}: it belongs to another run or format")
        return None
    return payload


def load_checkpoints(path: str | Path, params: dict[str, str], log=print) -> list[dict[str, Any]]:
    """The usable checkpoints of a run: its last and the one kept before it (newest first)."""
    found = (load_checkpoint(p, params, log) for p in (Path(path), previous_path(path)))
    return [payload for payload in found if payload is not None]


def remove_checkpoint(path: str | Path) -> None:
    Path(path).unlink(missing_ok=True)
    previous_path(path).unlink(missing_ok=True)
