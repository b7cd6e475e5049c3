"""The golden run folders (tests/golden_runs.py): every training feature reproduces its recorded numbers,
alone, resumed after a kill, and fused. The fixed point of issue 25's rewrite of the training loop."""

from pathlib import Path

import pytest

import bnlab.train.checkpoint as checkpoint_module
from bnlab.train import execute_run
from bnlab.train.run import execute_fused
from golden_runs import FUSED, GOLDEN, RESUMED, RUNS, assert_same, read_run, spec_of

FUSED_RTOL, FUSED_ATOL = 1e-4, 1e-5  # tests/test_fused.py's: grouped kernels sum in another order


def quiet(_line):
    pass


@pytest.mark.parametrize("name", list(RUNS))
def test_a_golden_run_trained_alone_reproduces_its_folder(name, digits_path, tmp_path):
    execute_run(spec_of(name), digits_path, tmp_path / name, log=quiet)
    assert_same(read_run(GOLDEN / name), read_run(tmp_path / name), what=name)


def test_the_golden_runs_use_every_training_feature():
    stored = {name: read_run(GOLDEN / name) for name in RUNS}
    assert stored["diverges"]["metrics"]["status"] == "diverged"
    assert stored["batch_growth_micro_batches"]["metrics"]["max_micro_batches"] > 1
    assert stored["batch_growth_micro_batches"]["metrics"]["final_batch_size"] > 16
    probed = stored["probes_ics_coadaptation"]
    assert len(probed["probes.parquet"]) and len(probed["ics.parquet"]) and probed["coadaptation"]["computed"]
    every = stored["bn_dropout_l2_smoothing_every_test"]["history.parquet"]
    assert (every.split == "test").sum() > 1  # eval_test: every
    specs = {name: spec_of(name) for name in RUNS}
    assert specs["bn_dropout_l2_smoothing_every_test"].label_smoothing > 0
    assert specs["bn_dropout_l2_smoothing_every_test"].l2 > 0 and specs["adamw_weight_decay"].weight_decay > 0


def test_a_golden_run_killed_and_resumed_reproduces_its_folder(digits_path, tmp_path, monkeypatch):
    saved = {"n": 0}
    real_saved = checkpoint_module.CheckpointPolicy.saved

    def die_after_second_save(self):
        real_saved(self)
        saved["n"] += 1
        if saved["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module.CheckpointPolicy, "saved", die_after_second_save)
    with pytest.raises(KeyboardInterrupt):
        execute_run(spec_of(RESUMED), digits_path, tmp_path / "run", log=quiet, checkpoint_every_steps=7)
    monkeypatch.setattr(checkpoint_module.CheckpointPolicy, "saved", real_saved)
    metrics = execute_run(spec_of(RESUMED), digits_path, tmp_path / "run", log=quiet, checkpoint_every_steps=7)
    assert metrics["resumed_from_step"] == 14
    assert_same(read_run(GOLDEN / RESUMED), read_run(tmp_path / "run"), what=f"{RESUMED} resumed")


def test_golden_runs_fused_reproduce_their_folders(digits_path, tmp_path):
    folders = [tmp_path / name for name in FUSED]
    execute_fused([spec_of(name) for name in FUSED], digits_path, folders, log=quiet)
    for name, folder in zip(FUSED, folders):
        assert_same(read_run(GOLDEN / name), read_run(folder), rtol=FUSED_RTOL, atol=FUSED_ATOL,
                    what=f"{name} fused")


def test_the_comparison_fails_on_a_changed_number(tmp_path):
    stored = read_run(GOLDEN / "adamw_weight_decay")
    changed = read_run(GOLDEN / "adamw_weight_decay")
    changed["steps.parquet"].loc[3, "loss"] *= 1.001
    with pytest.raises(AssertionError):
        assert_same(stored, changed)
    assert_same(stored, read_run(Path(GOLDEN / "adamw_weight_decay")))
