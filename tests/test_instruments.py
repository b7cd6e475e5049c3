"""The instrument registry (bnlab/instruments.py): declarations that fusion, the cost estimate, the config and
the trainer read instead of lists of their own. A made-up instrument registered here is refused by fusion,
costed and checked by the config through its declaration alone, and a made-up per-step one is taken by a
real run and written to its file with nothing but its declaration and its hook class (bnlab/train/hooks.py)."""

from __future__ import annotations

import dataclasses
import importlib.util

import pandas as pd
import pytest

from bnlab import instruments as registry
from bnlab import runfolder
from bnlab.config import ConfigError
from bnlab.cost import run_cost
from bnlab.fusion import fused_groups, unfusible_reason
from bnlab.instruments import Instrument, by_name, instruments
from bnlab.params import RunSpec
from bnlab.studies import STEP_INTERVALS
from bnlab.train.hooks import row_tables, runtime_class
from bnlab.train.run import execute_run

DATA = {"val_size": 300}  # the digits fixture's data section (tests/test_cost.py)
# run parameters that turn each switchable instrument on
ACTIVATE = {"probes": dict(probe_every=5, probe_etas=3), "ics": dict(ics_every=7), "coadaptation": dict(coadapt=True)}


def test_issue_25s_instruments_are_registered_once():
    names = [inst.name for inst in instruments()]
    assert sorted(names) == sorted(["probes", "ics", "coadaptation", "grad_norm", "last_grad_change", "bn_params"])
    assert len(set(names)) == len(names)
    with pytest.raises(KeyError, match="registered"):
        by_name("nothing")


@pytest.mark.parametrize("inst", instruments(), ids=lambda i: i.name)
def test_an_instrument_declares_run_folder_files_and_run_parameters_that_exist(inst):
    assert inst.files and set(inst.files) <= set(runfolder.OUTPUT_FILES), inst.files
    run_params = {f.name for f in dataclasses.fields(RunSpec)}
    assert set(inst.params) <= run_params, set(inst.params) - run_params
    assert inst.switch is None or inst.switch in inst.params
    assert inst.interval is None or (inst.interval in inst.params and inst.when == "step")
    assert inst.when in ("step", "epoch", "end")
    assert importlib.util.find_spec(inst.implementation) is not None, inst.implementation
    assert inst.switch is None or inst.name in ACTIVATE  # this test knows how to turn it on
    if inst.runtime:  # a per-step hook: named as its instrument, one file for its rows, not fused
        hook = runtime_class(inst)
        assert hook.name == inst.name and hook.COLUMNS and len(inst.files) == 1 and inst.when == "step"
        assert inst.files[0].endswith(".parquet") and not inst.fusable


def test_every_per_step_instruments_file_is_written_by_the_runner():
    assert [inst.files[0] for inst, _ in row_tables()] == [runfolder.PROBES, runfolder.ICS]


@pytest.mark.parametrize("name", list(ACTIVATE))
def test_fusion_refuses_a_run_by_its_instruments_declaration(name, make_spec):
    inst, off, on = by_name(name), make_spec(), make_spec(**ACTIVATE[name])
    assert inst.active(on) and not inst.active(off)
    assert unfusible_reason(off) is None
    assert unfusible_reason(on) == (None if inst.fusable else inst.description)


def test_every_instruments_interval_is_shrunk_in_a_toy_config():
    assert {inst.interval for inst in instruments() if inst.interval} <= set(STEP_INTERVALS)


def test_an_instrument_is_taken_on_its_steps_and_on_accumulated_ones_only_if_it_says_so(make_spec):
    probes, grad_norm, coadapt = by_name("probes"), by_name("grad_norm"), by_name("coadaptation")
    run = make_spec(probe_every=5, probe_etas=3)
    assert [s for s in range(1, 16) if probes.measures(run, s, 1)] == [5, 10, 15]
    assert not probes.measures(run, 10, 2)  # two micro-batches: no probe
    assert grad_norm.every(run) == 1 and grad_norm.measures(run, 3, 2)
    assert coadapt.every(make_spec(coadapt=True)) == 0  # once, at the end: not per step
    assert probes.every(make_spec()) == 0


# -- a made-up instrument, registered for one test ---------------------------------------------

MADE_UP = Instrument(
    name="smoothness_meter", description="made-up smoothness meter", switch="label_smoothing",
    params=("label_smoothing",), files=(runfolder.STEPS,), fusable=False, with_micro_batches=False,
    with_batch_growth=False, interval=None, extra_passes=lambda run, arch: 2, eval_images=lambda run, val: 7,
    implementation="bnlab.train.steppers")


@pytest.fixture
def register(monkeypatch):
    def add(inst: Instrument) -> None:
        monkeypatch.setattr(registry, "INSTRUMENTS", (*registry.INSTRUMENTS, inst))

    return add


def test_a_made_up_instrument_that_cannot_fuse_keeps_its_runs_alone(make_spec, register):
    smooth = [make_spec(seed=s, label_smoothing=0.1) for s in (0, 1)]
    plain = [make_spec(seed=s) for s in (0, 1)]
    assert [len(g.runs) for g in fused_groups(smooth + plain, max_members=8)] == [2, 2]  # not registered yet
    register(MADE_UP)
    assert unfusible_reason(smooth[0]) == "made-up smoothness meter"
    assert unfusible_reason(plain[0]) is None
    assert [sorted(r.seed for r in g.runs) for g in fused_groups(smooth + plain, max_members=8)] == [[0, 1]]
    assert all(r.label_smoothing == 0 for g in fused_groups(smooth + plain, max_members=8) for r in g.runs)


def test_the_same_instrument_declared_fusable_lets_the_runs_fuse(make_spec, register):
    register(dataclasses.replace(MADE_UP, fusable=True))
    smooth = [make_spec(seed=s, label_smoothing=0.1) for s in (0, 1)]
    assert unfusible_reason(smooth[0]) is None
    assert [len(g.runs) for g in fused_groups(smooth, max_members=8)] == [2]


def test_the_cost_counts_a_made_up_instruments_passes_and_images(make_spec, register):
    spec = make_spec(label_smoothing=0.1)
    before = run_cost(spec, DATA)
    assert before.extra_samples == 0
    register(MADE_UP)
    after = run_cost(spec, DATA)
    assert after.extra_samples == 2 * after.samples  # every step (no interval), two passes per sample
    assert after.eval_images == before.eval_images + 7
    assert run_cost(make_spec(), DATA).extra_samples == 0  # a run without it pays nothing
    # accumulated steps: skipped, as the declaration says (with_micro_batches False), and counted when not
    capped = make_spec(label_smoothing=0.1, batch_size=256, batch_mem_mb=0.05)
    assert run_cost(capped, DATA).extra_samples == 0
    register(dataclasses.replace(MADE_UP, name="smoothness_meter_2", with_micro_batches=True,
                                 extra_passes=lambda run, arch: 1))
    assert run_cost(capped, DATA).extra_samples == run_cost(capped, DATA).samples


def test_the_config_refuses_batch_growth_for_an_instrument_that_declares_it(make_spec, register):
    growing = dict(label_smoothing=0.1, batch_size=16, batch_growth_every=4, batch_growth_max=128)
    make_spec(**growing)  # nothing registered refuses it
    register(MADE_UP)
    with pytest.raises(ConfigError, match=r"label_smoothing.*made-up smoothness meter.*batch-growth"):
        make_spec(**growing)
    with pytest.raises(ConfigError, match=r"probe_every.*landscape probes.*batch-growth"):
        make_spec(**ACTIVATE["probes"], batch_size=16, batch_growth_every=4, batch_growth_max=128)


# -- a made-up per-step instrument: its declaration and its hook, nothing else -----------------------

class LabelCounter:
    """Every 3rd step: the sum of the batch's labels, read before the update."""

    name = "label_counter"
    COLUMNS = ("labels",)
    excluded = True  # timed apart, like ICS

    def __init__(self, every: int) -> None:
        self.every, self.seen = every, None

    @classmethod
    def for_run(cls, run, model):
        return cls(3)

    def before_forward(self, device) -> None:
        self.seen = "forward"

    def before_update(self, model, xb, yb, lr) -> None:
        assert self.seen == "forward"
        self.seen = int(yb.sum())

    def after_update(self, model, xb, yb, loss) -> list[dict]:
        return [{"labels": self.seen}]


COUNTER = Instrument(
    name="label_counter", description="made-up label counter", switch="label_smoothing",
    params=("label_smoothing",), files=("label_counter.parquet",), fusable=False, with_micro_batches=False,
    implementation=__name__, runtime=f"{__name__}:LabelCounter")


def test_a_made_up_per_step_instrument_is_taken_and_written_without_changing_the_run(
        tmp_path, digits_path, make_spec, register):
    spec = make_spec(label_smoothing=0.1, epochs=1, batch_size=128)
    execute_run(spec, digits_path, tmp_path / "before", log=lambda _: None)
    register(COUNTER)
    metrics = execute_run(spec, digits_path, tmp_path / "after", log=lambda _: None)
    rows = pd.read_parquet(tmp_path / "after" / "label_counter.parquet")
    assert list(rows.columns) == ["step", "epoch", "labels"]
    assert list(rows.step) == list(range(3, metrics["steps"] + 1, 3)) and (rows.labels > 0).all()
    steps = [pd.read_parquet(tmp_path / d / runfolder.STEPS).drop(columns="train_seconds", errors="ignore")
             for d in ("before", "after")]
    pd.testing.assert_frame_equal(*steps, check_exact=True)  # measuring it changed nothing in training
    assert not (tmp_path / "before" / "label_counter.parquet").exists()
    execute_run(make_spec(epochs=1, batch_size=128), digits_path, tmp_path / "off", log=lambda _: None)
    off = pd.read_parquet(tmp_path / "off" / "label_counter.parquet")
    assert off.empty and list(off.columns) == ["step", "epoch", "labels"]  # a run without it: an empty table


def test_a_checkpoint_from_before_the_hooks_resumes_with_its_rows():
    import pickle

    from bnlab.train.loop import LoopState

    old = LoopState()
    state = {k: v for k, v in vars(old).items() if k not in ("rows", "excluded_seconds")}
    state.update(probe_rows=[{"step": 5, "eta": 1.0}], ics_rows=[], ics_seconds=0.25)
    restored = LoopState.__new__(LoopState)
    restored.__setstate__(state)
    assert restored.rows == {"probes": [{"step": 5, "eta": 1.0}]} and restored.excluded_seconds == {"ics": 0.25}
    again = pickle.loads(pickle.dumps(restored))  # and a new one round-trips as it is
    assert again.rows == restored.rows and again.excluded_seconds == restored.excluded_seconds
