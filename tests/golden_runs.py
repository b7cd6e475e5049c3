"""Golden run folders: small digits runs that together use every training feature, recorded once.

Issue 25 rewrites the training loop; these runs are its fixed point. tests/test_golden.py trains each of them
again and compares every recorded number with the stored folder: alone within float rounding of this
machine's kernels (RTOL), fused within the fused path's tolerance. Regenerate only when a change is meant to
change results, and say so in the commit:

    .venv/bin/python tests/golden_runs.py        # rewrites tests/golden/<name>/
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"
FILES = ("history.parquet", "steps.parquet", "bn_params.parquet", "probes.parquet", "ics.parquet")
TIMING_COLUMNS = {"train_seconds", "wall_seconds", "eval_seconds"}
VOLATILE = {"train_seconds", "eval_seconds", "wall_seconds", "samples_per_second", "libraries", "hardware",
            "code_version", "coadapt_seconds", "ics_seconds", "determinism", "dataset_source", "dataset_files",
            "fused", "slurm_job_id"}
RTOL, ATOL = 1e-5, 1e-7  # another CPU's kernels may round differently; on the machine that wrote them: bit for bit

BASE = dict(model="mlp", widths=[32, 32], epochs=2, batch_size=64)
# name -> the run's parameters over conftest.make_spec's digits defaults; together every training feature
RUNS = {
    "bn_dropout_l2_smoothing_every_test": dict(BASE, bn="hidden", dropout_in=0.1, dropout_hidden=0.3, l2=1e-3,
                                               label_smoothing=0.1, eval_test="every", evals_per_epoch=3,
                                               optimizer="sgd", momentum=0.9, lr=0.05, lr_schedule="triangular",
                                               lr_min=1e-3, lr_period=1),
    # the first one's fusion partner: shares its architecture and batch plan, differs in what members may
    "adamw_weight_decay": dict(BASE, bn="hidden", dropout_in=0.2, dropout_hidden=0.5, label_smoothing=0.1,
                               eval_test="every", evals_per_epoch=3, optimizer="adamw", weight_decay=0.01,
                               lr=3e-3, init="xavier", seed=1),
    "batch_growth_micro_batches": dict(BASE, batch_size=16, batch_growth_every=4, batch_growth_max=128,
                                       batch_mem_mb=0.1, epochs=3),
    "probes_ics_coadaptation": dict(model="cnn2", widths="default", bn="hidden", epochs=1, batch_size=64,
                                    probe_every=5, probe_etas=3, ics_every=7, coadapt=True),
    "diverges": dict(BASE, optimizer="sgd", momentum=0.0, lr=1e4),
}
FUSED = ("bn_dropout_l2_smoothing_every_test", "adamw_weight_decay")  # trained together as one fused group
RESUMED = "bn_dropout_l2_smoothing_every_test"  # killed after its 2nd checkpoint (every 7 steps), resumed


def read_run(folder: Path) -> dict:
    """What a golden comparison looks at: every recorded table (timings out) and the metrics that are results."""
    out = {}
    for name in FILES:
        path = folder / name
        if path.exists():
            frame = pd.read_parquet(path)
            out[name] = frame.drop(columns=[c for c in frame.columns if c in TIMING_COLUMNS])
    metrics = json.loads((folder / "metrics.json").read_text())
    out["metrics"] = {k: v for k, v in metrics.items() if k not in VOLATILE and k != "resumed_from_step"}
    coadapt = folder / "coadaptation.json"
    if coadapt.exists():
        out["coadaptation"] = {k: v for k, v in json.loads(coadapt.read_text()).items() if k != "seconds"}
    return out


def assert_same(stored: dict, fresh: dict, rtol: float = RTOL, atol: float = ATOL, what: str = "") -> None:
    assert sorted(stored) == sorted(fresh), (what, sorted(stored), sorted(fresh))
    for name in FILES:
        if name in stored:
            pd.testing.assert_frame_equal(stored[name], fresh[name], check_exact=False, rtol=rtol, atol=atol,
                                          obj=f"{what} {name}")
    _assert_close(stored["metrics"], fresh["metrics"], rtol, atol, f"{what} metrics.json")
    if "coadaptation" in stored:
        _assert_close(stored["coadaptation"], fresh["coadaptation"], rtol, atol, f"{what} coadaptation.json")


def _assert_close(a, b, rtol, atol, where):
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), (where, a, b)
        for key in a:
            _assert_close(a[key], b[key], rtol, atol, f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), (where, a, b)
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_close(x, y, rtol, atol, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, (int, float)):
        assert abs(a - b) <= atol + rtol * abs(b) or (a != a and b != b), (where, a, b)
    else:
        assert a == b, (where, a, b)


def spec_of(name: str):
    """The RunSpec of a golden run: the schema's defaults on digits, then its parameters."""
    from bnlab.config import load_schema, resolve_run

    defaults = {k: v["default"] for k, v in load_schema()["$defs"]["run"]["properties"].items()}
    return resolve_run({**defaults, "dataset": "digits", **RUNS[name]})


def prepare_digits(path: Path) -> Path:
    from bnlab.data import prepare_dataset

    prepare_dataset("digits", path, val_size=300, split_seed=0, log=lambda _: None)
    return path


def write_golden() -> None:
    from bnlab.train import execute_run

    with tempfile.TemporaryDirectory() as tmp:
        data = prepare_digits(Path(tmp) / "digits.pt")
        for name in RUNS:
            folder = Path(tmp) / name
            execute_run(spec_of(name), data, folder, log=lambda _: None)
            target = GOLDEN / name
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            for file in (*FILES, "metrics.json", "coadaptation.json"):
                if (folder / file).exists():
                    shutil.copy(folder / file, target / file)
            print(f"wrote {target}")


if __name__ == "__main__":
    write_golden()
