"""A run killed at any point and restarted ends with the same results as an uninterrupted one."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from bnlab import runfolder
from bnlab.train import execute_run
from bnlab.train.checkpoint import CHECKPOINT, CheckpointPolicy

TIMING = ["train_seconds", "wall_seconds"]
VOLATILE_METRICS = {"train_seconds", "eval_seconds", "wall_seconds", "samples_per_second", "resumed_from_step", "libraries",
                    "hardware", "code_version"}


def quiet(_line):
    pass


def assert_same_run(a, b):
    ra, rb = runfolder.load_run(a), runfolder.load_run(b)
    pd.testing.assert_frame_equal(ra.history.drop(columns=TIMING), rb.history.drop(columns=TIMING))
    pd.testing.assert_frame_equal(ra.steps(), rb.steps())
    pd.testing.assert_frame_equal(ra.bn_params(), rb.bn_params())
    ma = {k: v for k, v in ra.metrics.items() if k not in VOLATILE_METRICS}
    mb = {k: v for k, v in rb.metrics.items() if k not in VOLATILE_METRICS}
    assert ma == mb


class CrashAfter(CheckpointPolicy):
    """Saves every N steps like the real policy, then dies right after the k-th save."""

    def __init__(self, path, every_steps, crash_after):
        super().__init__(path, every_steps=every_steps)
        self.crash_after, self.count = crash_after, 0

    def saved(self):
        super().saved()
        self.count += 1
        if self.count == self.crash_after:
            raise KeyboardInterrupt("simulated kill after a checkpoint")


GROWING = {"batch_size": 16, "batch_growth_every": 4, "batch_growth_max": 128, "batch_mem_mb": 0.1}


@pytest.mark.parametrize("crash_after, growth, every", [(1, {}, 7), (3, {}, 7), (3, GROWING, 7), (1, {}, "epoch")],
                         ids=["1st checkpoint", "3rd checkpoint", "3rd checkpoint, growing batch", "epoch boundary"])
def test_resume_after_a_crash_gives_identical_results(tmp_path, digits_path, make_spec, monkeypatch, crash_after,
                                                      growth, every):
    # The growing-batch case resumes mid-plan: batch sizes, epoch boundaries and accumulation must continue.
    # A checkpoint on an epoch boundary is written before that epoch's end (new order, BN snapshot).
    spec = make_spec(bn="hidden", dropout_hidden=0.3, epochs=4, evals_per_epoch=3, **growth)
    straight = execute_run(spec, digits_path, tmp_path / "straight", log=quiet)
    if every == "epoch":
        every = straight["steps_per_epoch"]

    import bnlab.train.run as run_module

    real_policy = run_module.CheckpointPolicy
    monkeypatch.setattr(run_module, "CheckpointPolicy",
                        lambda path, every_steps, every_seconds: CrashAfter(path, every, crash_after))
    with pytest.raises(KeyboardInterrupt):
        execute_run(spec, digits_path, tmp_path / "killed", log=quiet, checkpoint_every_steps=every)
    assert (tmp_path / "killed" / CHECKPOINT).exists()
    assert not (tmp_path / "killed" / runfolder.METRICS).exists()
    monkeypatch.setattr(run_module, "CheckpointPolicy", real_policy)

    lines = []
    metrics = execute_run(spec, digits_path, tmp_path / "killed", log=lines.append, checkpoint_every_steps=every)
    assert metrics["resumed_from_step"] == every * crash_after
    assert any(f"resumed from checkpoint at step {every * crash_after}/" in line for line in lines)
    assert not (tmp_path / "killed" / CHECKPOINT).exists()  # removed once the run is written
    assert_same_run(tmp_path / "straight", tmp_path / "killed")


def test_sigkill_mid_run_then_restart(tmp_path, digits_path, make_spec):
    """A real SIGKILL at an arbitrary moment after the first checkpoint."""
    spec = make_spec(bn="hidden", dropout_hidden=0.2, epochs=40, evals_per_epoch=1)
    execute_run(spec, digits_path, tmp_path / "straight", log=quiet)
    out = tmp_path / "killed"
    script = tmp_path / "train_once.py"
    script.write_text(
        "import json, sys\n"
        "from bnlab.params import RunSpec\n"
        "from bnlab.train import execute_run\n"
        "spec = RunSpec.from_strings(json.loads(sys.argv[1]))\n"
        "execute_run(spec, sys.argv[2], sys.argv[3], log=lambda s: None, checkpoint_every_steps=25)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script), json.dumps(spec.as_strings()), str(digits_path), str(out)])
    deadline = time.time() + 120
    while not (out / CHECKPOINT).exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)  # somewhere after the first checkpoint, not at it
    if proc.poll() is not None:
        pytest.fail("the training process ended before it could be killed; make the run longer")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / runfolder.METRICS).exists()
    metrics = execute_run(spec, digits_path, out, log=quiet, checkpoint_every_steps=25)
    assert metrics["resumed_from_step"] and metrics["resumed_from_step"] % 25 == 0
    assert_same_run(tmp_path / "straight", out)


def test_checkpoint_of_another_run_is_ignored(tmp_path, digits_path, make_spec, monkeypatch):
    import bnlab.train.run as run_module

    monkeypatch.setattr(run_module, "CheckpointPolicy",
                        lambda path, every_steps, every_seconds: CrashAfter(path, 5, 1))
    with pytest.raises(KeyboardInterrupt):
        execute_run(make_spec(seed=1), digits_path, tmp_path, log=quiet, checkpoint_every_steps=5)
    monkeypatch.undo()
    lines = []
    metrics = execute_run(make_spec(seed=2), digits_path, tmp_path, log=lines.append)
    assert metrics["resumed_from_step"] is None
    assert any("ignoring checkpoint" in line for line in lines)
