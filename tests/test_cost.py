"""The cost estimate (bnlab.cost): steps and images as a real run takes them, FLOPs by hand, the CLI."""

import json

import pytest
import yaml

from bnlab import cost, runfolder
from bnlab.cost import FLOPS_PER_MAC, TRAIN_PASSES, arch_cost, plan_cost, run_cost
from bnlab.config import build_plan, load_config
from bnlab.train import execute_run

DATA = {"val_size": 300}  # the config's data section of the digits fixture (tests/conftest.py)
N_TRAIN, N_VAL, N_TEST = 1437 - 300, 300, 360


def quiet(_line):
    pass


def evaluated_images(history) -> int:
    """Images the run really evaluated: every curve point, and the whole splits unless copied from one."""
    counted = history[history.split.isin(["val", "test"])].images.sum()
    for split in ("val", "test"):
        full = history[history.split == f"{split}_full"]
        curve = history[(history.split == split) & (history.step == history.step.max())]
        copied = len(curve) and int(curve.images.iloc[-1]) == int(full.images.iloc[0])
        counted += 0 if copied else int(full.images.iloc[0])
    return int(counted)


@pytest.mark.parametrize("overrides", [
    {"evals_per_epoch": 2},  # curve points on the whole validation split
    {"evals_per_epoch": 3, "eval_size": 100, "eval_test": "every", "batch_size": 50},  # on subsets
])
def test_steps_samples_and_evaluations_are_those_of_a_real_run(tmp_path, digits_path, make_spec, overrides):
    spec = make_spec(**overrides)
    estimate = run_cost(spec, DATA)
    metrics = execute_run(spec, digits_path, tmp_path, log=quiet)
    assert estimate.steps == metrics["steps"]
    assert estimate.samples == metrics["samples"]
    assert estimate.eval_images == evaluated_images(runfolder.load_run(tmp_path).history)


def test_growing_batch_and_accumulation_counted_like_the_loop(tmp_path, digits_path, make_spec):
    # the smoke config's growth cell: 16 -> 128, doubling every 5 steps, micro-batches under 0.1 MB
    growing = make_spec(optimizer="sgd", batch_size=16, batch_growth_every=5, batch_growth_max=128, epochs=3,
                        batch_mem_mb=0.1)
    estimate = run_cost(growing, DATA)
    metrics = execute_run(growing, digits_path, tmp_path / "grow", log=quiet)
    assert estimate.steps == metrics["steps"] and estimate.samples == metrics["samples"]
    steps = runfolder.load_run(tmp_path / "grow").steps()
    assert list(steps.batch_size.unique()) == [16, 32, 64, 128]  # the plan really grows
    assert arch_cost(growing).micro_cap == metrics["micro_batch_cap"]
    # most samples go through micro-batches of the cap: that is the batch --measure times
    assert estimate.pass_batch == metrics["micro_batch_cap"] < 128
    # by hand: 5 steps of 16, 32 and 64, then 128 until the epoch runs out; 3 passes over 1137 images
    assert estimate.samples == sum(steps.batch_size)
    # via lr: the batch stays at 16, only the rate decays
    via_lr = make_spec(optimizer="sgd", batch_size=16, batch_growth_every=5, batch_growth_max=128, epochs=3,
                       batch_growth_via="lr")
    fixed = run_cost(via_lr, DATA)
    assert fixed.steps == 3 * (N_TRAIN // 16) and fixed.samples == fixed.steps * 16 and fixed.pass_batch == 16


def test_flops_of_a_linear_mlp_by_hand(make_spec):
    spec = make_spec(widths=[32], epochs=2, batch_size=64, evals_per_epoch=1)
    macs = 64 * 32 + 32 * 10  # 8x8 pixels -> 32 hidden -> 10 classes; biases, ReLU not counted
    estimate = run_cost(spec, DATA)
    assert estimate.macs == macs
    steps = 2 * (N_TRAIN // 64)
    assert (estimate.steps, estimate.samples) == (steps, steps * 64)
    assert estimate.train_flops == 6 * macs * steps * 64 == TRAIN_PASSES * FLOPS_PER_MAC * macs * steps * 64
    # curve points at step 0 and both epoch ends on the whole validation split (eval_size 1000 > 300),
    # then the whole test set; the final validation point is the curve's own
    assert estimate.eval_images == 3 * N_VAL + N_TEST
    assert estimate.eval_flops == 2 * macs * (3 * N_VAL + N_TEST)
    assert estimate.extra_flops == 0 and estimate.flops == estimate.train_flops + estimate.eval_flops


def test_probes_and_ics_add_extra_passes(make_spec):
    steps = 2 * (N_TRAIN // 64)  # 34
    probed = run_cost(make_spec(probe_every=5, probe_etas=4), DATA)
    assert probed.extra_samples == (steps // 5) * 4 * 64  # one forward/backward per step size
    with_dropout = run_cost(make_spec(probe_every=5, probe_etas=4, dropout_hidden=0.5), DATA)
    assert with_dropout.extra_samples == (steps // 5) * 5 * 64  # + the base gradient under the probe's masks
    shifted = run_cost(make_spec(ics_every=10), DATA)
    # 3 weight layers of which the first has nothing trainable before it: 2 measured per ICS step
    assert arch_cost(make_spec(ics_every=10)).ics_layers == 2
    assert shifted.extra_samples == (steps // 10) * 2 * 64
    assert shifted.extra_flops == 6 * shifted.macs * shifted.extra_samples


def test_size_rank_grows_with_the_work_and_ranks_a_run_the_trainer_refuses_last(make_spec):
    small, big = make_spec(epochs=1), make_spec(epochs=64, widths=[1024, 1024])
    assert cost.size_rank(small, DATA) < cost.size_rank(big, DATA)
    # a memory cap too small for 2 samples: the cost model cannot size it and the trainer will refuse it;
    # the workflow must still schedule it (its job reports the refusal), not fail to build the DAG
    refused = make_spec(batch_growth_every=2, batch_growth_max=128, batch_mem_mb=1e-6)
    with pytest.raises(ValueError, match="batch_mem_mb"):
        run_cost(refused, DATA)
    assert cost.size_rank(refused, DATA) == 0


def test_plan_counts_shared_runs_once():
    config = load_config("config/smoke.yaml")
    config["studies"]["again"] = {**config["studies"]["smoke_bn"], "title": "the same cells again"}
    plan = build_plan(config)
    pc = plan_cost(plan)
    assert len(pc.studies["again"].runs) == len(pc.studies["smoke_bn"].runs) == 4
    assert len(pc.runs) == len(plan.runs) == sum(len(s.runs) for s in pc.studies.values()) - 4
    assert pc.total("steps") == sum(r.steps for r in pc.runs)


def test_measure_times_the_real_loop(make_spec):
    import torch

    costs = [run_cost(make_spec(bn=bn), DATA) for bn in ("none", "hidden")] + [run_cost(make_spec(), DATA)]
    speeds = cost.measure(costs, torch.device("cpu"), max_steps=3, seconds=0.01, log=quiet)
    assert len(speeds) == 2  # the third run has the first one's architecture and batch
    for t in speeds.values():
        assert t.steps == 3 and t.batch == 64 and t.seconds > 0 and t.flops_per_second > 0
    hours = cost.run_hours(costs[0], speeds)
    assert hours == pytest.approx(costs[0].flops / speeds[cost.measure_key(costs[0])].flops_per_second / 3600)


def test_measure_cuts_large_batches(make_spec):
    big = run_cost(make_spec(batch_size=512), DATA)
    assert big.pass_batch == 512 and cost.measure_batch(big) == cost.MEASURE_MAX_BATCH == 256
    assert cost.measure_key(big)[-1] == 256


def tiny_config(tmp_path, **defaults) -> str:
    config = {"data": {"val_size": 300}, "execution": {"threads_per_run": 1, "device": "cpu"},
              "defaults": {"dataset": "digits", "model": "mlp", "widths": [16], "epochs": 1, **defaults},
              "studies": {"tiny": {"title": "t", "question": "q", "source": "s", "grid": {"bn": ["none", "hidden"]},
                                   "seeds": [0]}}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_cli_prints_a_table_per_study_and_totals(tmp_path, capsys):
    assert cost.main(["--configfile", tiny_config(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 training runs" in out and "tiny" in out and "total (distinct runs)" in out
    header = next(line for line in out.splitlines() if line.startswith("study"))
    assert "Throughput not measured" in out and "device-h" not in header
    assert cost.main(["--configfile", tiny_config(tmp_path), "--measure", "--steps", "3", "--seconds", "0.01"]) == 0
    captured = capsys.readouterr()
    header = next(line for line in captured.out.splitlines() if line.startswith("study"))
    assert "device-h" in header and "device-hours in all" in captured.out
    assert "[1/2]" in captured.err  # a progress line per measured architecture


def test_cli_bad_config_names_the_field_without_a_traceback(tmp_path, capsys):
    assert cost.main(["--configfile", tiny_config(tmp_path, batch_size=100000)]) == 2
    err = capsys.readouterr().err
    assert "batch_size" in err and "Traceback" not in err
    assert cost.main(["--configfile", str(tmp_path / "missing.yaml")]) == 2
    assert "no config file" in capsys.readouterr().err


def test_cli_cuda_without_a_gpu_is_a_clear_error(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert cost.main(["--configfile", tiny_config(tmp_path), "--measure", "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_default_and_full_configs_are_costed():
    """Every run of the shipped configs gets a cost (the accounting builds every model on the meta device)."""
    for path in ("config.yaml", "config/full.yaml"):
        pc = plan_cost(build_plan(load_config(path)))
        assert pc.runs and all(r.steps > 0 and r.macs > 0 for r in pc.runs)
        json.dumps({r.run.relative_dir(): r.flops for r in pc.runs})  # plain numbers


def test_table_shows_each_studys_limit_beside_its_longest_run(make_spec):
    plan = build_plan(load_config("config/smoke.yaml"))
    pc = plan_cost(plan)
    # a made-up rate: every architecture at 1 MFLOP/s, so runs last hours
    speeds = {cost.measure_key(r): cost.Throughput(key=cost.measure_key(r), batch=r.pass_batch, steps=1,
                                                    seconds=1.0, macs=500_000) for r in pc.runs}
    name = next(iter(pc.studies))
    longest = 60 * max(cost.run_hours(r, speeds) for r in pc.studies[name].runs)
    text = cost.table(pc, speeds, limits={name: 7})
    header = text.splitlines()[0]
    assert header.rstrip().endswith("longest run min  limit min")
    row = next(line for line in text.splitlines() if line.startswith(name))
    assert row.split()[-2:] == [f"{longest:,.0f}", "7"]


def test_cli_flags_runs_that_outlast_their_limit(tmp_path, capsys):
    path = tiny_config(tmp_path)
    assert cost.main(["--configfile", path, "--measure", "--steps", "3", "--seconds", "0.01"]) == 0
    assert "outlast their runtime limit" not in capsys.readouterr().out  # tiny runs, 120-minute limit
    config = yaml.safe_load(open(path))
    config["defaults"]["epochs"] = 100_000  # millions of steps: far more than a minute on any CPU
    config["execution"]["runtime_min"] = 1
    slow = tmp_path / "slow.yaml"
    slow.write_text(yaml.safe_dump(config))
    assert cost.main(["--configfile", str(slow), "--measure", "--steps", "3", "--seconds", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "outlast their runtime limit" in out and "tiny (longest run" in out and "limit 1 min" in out
