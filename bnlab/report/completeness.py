"""Which runs of a plan exist: done, diverged, failed or missing (for a report from what exists)."""

from __future__ import annotations

from pathlib import Path

from bnlab.params import RunSpec
from bnlab.runfolder import LOG, METRICS, read_json

STATES = ("done", "diverged", "failed", "missing")


def run_state(folder: Path) -> str:
    """done / diverged: metrics.json says so (it is written last); failed: the job left its log but no
    metrics.json (Snakemake keeps a failed job's log); missing: nothing yet."""
    if (folder / METRICS).exists():
        return "diverged" if read_json(folder / METRICS).get("status") == "diverged" else "done"
    return "failed" if (folder / LOG).exists() else "missing"


def run_states(runs: list[RunSpec], results: str | Path) -> dict[str, str]:
    return {r.relative_dir(): run_state(Path(results) / "runs" / r.relative_dir()) for r in runs}


def finished(runs: list[RunSpec], results: str | Path) -> list[RunSpec]:
    """Runs with a metrics.json (done or diverged): what a partial report can analyse."""
    states = run_states(runs, results)
    return [r for r in runs if states[r.relative_dir()] in ("done", "diverged")]
