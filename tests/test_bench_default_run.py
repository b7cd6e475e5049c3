"""bench/default_run.py: Snakemake log parsing and the job-slot arithmetic, on a tiny synthetic run."""

import importlib.util
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

PATH = Path(__file__).resolve().parents[1] / "bench" / "default_run.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_default_run", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


RUN0 = "results/runs/dataset~digits/model~mlp/w~64_bn~none/opt~adam/bs~32_seed~0"
RUN1 = "results/runs/dataset~digits/model~mlp/w~64_bn~none/opt~adam/bs~32_seed~1"

LOG = f"""\
Provided cores: 3
Job stats:
job      count
train        2

Select jobs to execute...
Execute 2 jobs...

[Wed Dec  2 10:00:00 2026]
localrule prepare_data:
    output: results/data/digits.pt
    log: results/logs/prepare_data/digits.log
    jobid: 3
    reason: Missing output files: results/data/digits.pt
    resources: tmpdir=/tmp
[Wed Dec  2 10:00:04 2026]
Finished jobid: 3 (Rule: prepare_data)
1 of 3 steps (33%) done

[Wed Dec  2 10:00:04 2026]
localrule train:
    input: results/data/digits.pt
    output: {RUN0}/config.json, {RUN0}/metrics.json
    log: {RUN0}/train.log
    jobid: 1
    reason: Missing output files: {RUN0}/metrics.json
    wildcards: dataset=digits, seed=0
    resources: tmpdir=/tmp

[Wed Dec  2 10:00:05 2026]
rule train:
    input: results/data/digits.pt
    output: {RUN1}/config.json, {RUN1}/metrics.json
    log: {RUN1}/train.log
    jobid: 2
    wildcards: dataset=digits, seed=1
    threads: 2
    resources: tmpdir=/tmp
[Wed Dec  2 10:00:24 2026]
Finished jobid: 1 (Rule: train)
2 of 3 steps (67%) done
[Wed Dec  2 10:00:35 2026]
Finished job 2.
3 of 3 steps (100%) done
Elapsed time: 0:00:40.000000
\tCommand being timed: "snakemake --cores 3"
\tPercent of CPU this job got: 150%
\tElapsed (wall clock) time (h:mm:ss or m:ss): 0:41.50
\tMaximum resident set size (kbytes): 204800
"""


def write_run(folder: Path, metrics: dict, history: list[dict], train_log: str | None):
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    pd.DataFrame(history).to_parquet(folder / "history.parquet")
    if train_log is not None:
        (folder / "train.log").write_text(train_log)


@pytest.fixture
def run(tmp_path):
    """A log and a results folder: run 0 (1 thread, eval derived), run 1 (2 threads, eval recorded)."""
    (tmp_path / "run.log").write_text(LOG)
    results = tmp_path / "results"
    # run 0: evaluations start at loop wall 0.5, 8.5, 14.0 with 0, 6, 10 s trained; val 100, test 100
    h0 = [
        {"step": 0, "split": "val", "train_seconds": 0.0, "wall_seconds": 0.5},
        {"step": 10, "split": "train", "train_seconds": 6.0, "wall_seconds": 8.5},
        {"step": 10, "split": "val", "train_seconds": 6.0, "wall_seconds": 8.5},
        {"step": 20, "split": "train", "train_seconds": 10.0, "wall_seconds": 14.0},
        {"step": 20, "split": "val", "train_seconds": 10.0, "wall_seconds": 14.0},
        {"step": 20, "split": "test", "train_seconds": 10.0, "wall_seconds": 14.0},
    ]
    write_run(results / Path(RUN0).relative_to("results"),
              {"status": "ok", "threads": 1, "train_seconds": 10.0, "wall_seconds": 19.0, "resumed_from_step": None},
              h0, "run x\ndata digits from sklearn: train 1000 val 100 test 100; model mlp\n")
    write_run(results / Path(RUN1).relative_to("results"),
              {"status": "diverged", "threads": 2, "train_seconds": 20.0, "wall_seconds": 28.0, "eval_seconds": 5.0},
              h0, None)
    return tmp_path / "run.log", results


def test_parse_log(bench, run):
    log = bench.parse_log(run[0].read_text().splitlines(keepends=True))
    assert log.cores == 3
    assert log.snakemake_elapsed == pytest.approx(40.0)
    assert log.time_elapsed == pytest.approx(41.5)
    assert log.peak_rss_kb == 204800 and log.cpu_percent == 150
    assert sorted(log.jobs) == [1, 2, 3]
    prep, r0, r1 = log.jobs[3], log.jobs[1], log.jobs[2]
    assert (prep.rule, prep.threads, prep.seconds, prep.finished) == ("prepare_data", 1, 4.0, True)
    assert (r0.rule, r0.threads, r0.seconds) == ("train", 1, 20.0)  # 10:00:04 -> 10:00:24
    assert (r1.rule, r1.threads, r1.seconds) == ("train", 2, 30.0)  # 10:00:05 -> 10:00:35, old "Finished job 2."
    assert r0.run_dir == tuple(Path(RUN0).parts[2:])
    assert prep.run_dir is None


def test_timestamps_and_clock(bench):
    a = bench.parse_timestamp("Wed Dec  2 16:56:47 2026")
    b = bench.parse_timestamp("Wed Dec  2 17:21:25 2026")
    assert (b - a).total_seconds() == 24 * 60 + 38
    assert bench.parse_clock("24:44.22") == pytest.approx(1484.22)
    assert bench.parse_clock("1:02:03") == 3723


def test_failed_attempt_is_counted(bench):
    log = bench.parse_log([
        "[Wed Dec  2 10:00:00 2026]\n", "localrule train:\n", "    jobid: 7\n",
        "[Wed Dec  2 10:00:09 2026]\n", "Error in rule train:\n", "    message: boom\n", "    jobid: 7\n",
        "Shutting down\n",
    ])
    job = log.jobs[7]
    assert job.seconds == 9.0 and not job.finished and job.attempts[-1][2] == "failed"


def test_derive_eval_seconds(bench):
    rows = [
        {"split": "val", "train_seconds": 0.0, "wall_seconds": 0.5},
        {"split": "train", "train_seconds": 6.0, "wall_seconds": 8.5},
        {"split": "val", "train_seconds": 6.0, "wall_seconds": 8.5},
        {"split": "train", "train_seconds": 10.0, "wall_seconds": 14.0},
        {"split": "val", "train_seconds": 10.0, "wall_seconds": 14.0},
        {"split": "test", "train_seconds": 10.0, "wall_seconds": 14.0},
    ]
    # timed: (14 - 10) - (0.5 - 0) = 3.5 s over 2 x 100 val samples; last: val 100 + test 300 samples
    total, last, known = bench.derive_eval_seconds(rows, 100, 300)
    assert known and last == pytest.approx(3.5 / 200 * 400) and total == pytest.approx(3.5 + 7.0)
    total, last, known = bench.derive_eval_seconds(rows, None, None)  # sizes unknown: val = test
    assert not known and last == pytest.approx(3.5) and total == pytest.approx(7.0)


def test_split_arithmetic(bench, run):
    log_path, results = run
    log = bench.parse_log(log_path.read_text().splitlines(keepends=True))
    wall, source = bench.choose_wall(log, None)
    assert wall == pytest.approx(41.5) and "time" in source  # /usr/bin/time beats Snakemake's own
    s = bench.compute_split(log, results, cores=3, wall=40.0, wall_source="test")
    assert s.slot == pytest.approx(120.0)
    # run 0 (1 thread, 20 s job): train 10, eval 3.5 + 3.5 = 7 (derived), other 19 - 17 = 2, outside 20 - 19 = 1
    # run 1 (2 threads, 30 s job): train 20, eval 5 (recorded), other 28 - 25 = 3, outside 30 - 28 = 2; x2 slots
    assert s.optimizer == pytest.approx(10 + 40)
    assert s.evaluation == pytest.approx(7 + 10)
    assert s.other_in_process == pytest.approx(2 + 6)
    assert s.startup_in_jobs == pytest.approx(1 + 4)
    assert s.other_jobs == pytest.approx(4.0) and s.other_jobs_by_rule == {"prepare_data": 4.0}
    assert s.idle == pytest.approx(120 - 80 - 4)
    assert s.startup_scheduling == pytest.approx(5 + 36)
    total = s.optimizer + s.evaluation + s.other_in_process + s.startup_scheduling + s.other_jobs
    assert total == pytest.approx(s.slot)
    assert (s.train_jobs, s.runs_timed, s.eval_recorded, s.runs_without_metrics) == (2, 2, 1, 0)
    assert s.statuses == {"ok": 1, "diverged": 1}


def test_from_log_prints_and_writes_json(bench, run, tmp_path, capsys):
    log_path, results = run
    out = tmp_path / "split.json"
    assert bench.main(["--from-log", str(log_path), "--results", str(results), "--wall", "40",
                       "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "optimizer steps" in text and "41.7%" in text  # 50 of 120 slot-seconds
    assert "derived" in text and "MISSED" in text
    data = json.loads(out.read_text())
    assert data["cores"] == 3 and data["wall"] == 40.0 and data["startup_scheduling"] == pytest.approx(41.0)


def test_refuses_non_empty_results(bench, tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "old").write_text("x")
    with pytest.raises(SystemExit) as err:  # refused before anything runs
        bench.main(["--results", str(tmp_path / "results"), "--configfile", "config/smoke.yaml"])
    assert err.value.code == 2
