"""profiles/slurm on a real one-node SLURM cluster (Debian's SLURM 22.05 on localhost).

1. The smoke study through `--profile profiles/slurm`: every training run is a
   SLURM job (its metrics.json records $SLURM_JOB_ID) and the report is built.
2. Resume: a longer run is cancelled with scancel once it has written a
   checkpoint; the profile's `retries` resubmits it, and the new job resumes
   from the checkpoint and finishes with status ok.

The cluster (munged, slurmctld, slurmd; tests/slurm_cluster.py) is started
once for the module under a tmp folder and stopped by PID afterwards, also
when a test fails. Debian's packages are installed with apt-get when missing
(root only; skipped otherwise). Run: .venv/bin/python -m pytest -m slurm
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from slurm_cluster import SlurmCluster, ensure_installed

# slow as well: `pytest -m "not slow"` (the quick run) leaves it out.
pytestmark = [pytest.mark.slurm, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 600  # seconds, per snakemake call


def report(request, line):
    """Print past pytest's output capture (wall times belong in the CI log)."""
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(f"[slurm] {line}")
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"[slurm] {line}")


@pytest.fixture(scope="module")
def cluster(request, tmp_path_factory):
    start = time.monotonic()
    reason = ensure_installed(log=lambda line: report(request, line))
    if reason:
        pytest.skip(reason)
    report(request, f"packages ready in {time.monotonic() - start:.1f} s")
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"), log=lambda line: report(request, line))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        report(request, f"module wall time {time.monotonic() - start:.1f} s (install, cluster, both tests)")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Results folder shared by both tests (the resume run reuses the prepared digits data)."""
    return tmp_path_factory.mktemp("slurm-work")


def snakemake_args(cluster: SlurmCluster, work: Path, *config_args: str) -> list[str]:
    """Our profile, plus the test cluster's partition and small resources.

    Command-line options replace the profile's value of the same key whole, so
    --default-resources lists every key. Memory is overridden because the
    config's execution.mem_mb (4000) may exceed a small CI machine's RAM; the
    first status check comes after 2 s instead of the profile's 10 s.
    """
    return [
        sys.executable, "-m", "snakemake", "--profile", "profiles/slurm", *config_args,
        "--default-resources", f"slurm_partition={cluster.partition}", "mem_mb=200", "runtime=10",
        "--set-resources", "train:mem_mb=300", "prepare_data:mem_mb=300",
        "--slurm-init-seconds-before-status-checks", "2",
        "--slurm-logdir", str(work / "slurm_logs"),
    ]


def explain(cluster: SlurmCluster, work: Path, output: str) -> str:
    """What to read when a snakemake call fails: its output, SLURM's jobs and logs."""
    slurm_logs = "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in sorted(work.glob("slurm_logs/**/*.log"))
    )
    return f"{output[-6000:]}\n=== jobs: {cluster.jobs()}\n=== daemons:\n{cluster.logs()}\n=== job logs:\n{slurm_logs}"


def train_jobs(cluster: SlurmCluster) -> list[dict[str, str]]:
    # The slurm executor puts "rule_<name>_wildcards_..." in each job's comment; a fused group's
    # rule is named fused_<key>.
    return [j for j in cluster.jobs() if j["comment"].startswith(("rule_train", "rule_fused_"))]


def test_smoke_study_runs_train_jobs_on_slurm(cluster, work, request):
    start = time.monotonic()
    results = work / "res"
    # smoke.yaml's batch-norm study alone: 4 SLURM jobs are enough to test the executor, and the
    # other smoke studies are covered by the local end-to-end test.
    cfg = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    cfg["studies"] = {"smoke_bn": cfg["studies"]["smoke_bn"]}
    (work / "smoke_bn.yaml").write_text(yaml.safe_dump(cfg))
    args = snakemake_args(cluster, work, "--configfile", str(work / "smoke_bn.yaml"), "--config", f"results={results}")
    out = subprocess.run(args, cwd=ROOT, env=cluster.env(), capture_output=True, text=True, timeout=TIMEOUT)
    output = out.stdout + out.stderr
    assert out.returncode == 0, explain(cluster, work, output)
    report(request, f"smoke study through profiles/slurm: {time.monotonic() - start:.1f} s")

    assert (results / "report.pdf").stat().st_size > 0
    metrics = sorted(results.glob("runs/**/metrics.json"))
    assert len(metrics) == 4, metrics  # smoke: bn none/hidden x seeds 0, 1
    job_ids, groups = {}, {}
    for path in metrics:
        m = json.loads(path.read_text())
        job_id = m.get("slurm_job_id")
        assert job_id not in (None, ""), f"{path}: trained outside SLURM (slurm_job_id={job_id!r})"
        assert re.fullmatch(r"\d+", str(job_id)), job_id
        job_ids.setdefault(str(job_id), []).append(path)
        groups.setdefault((m.get("fused") or {}).get("group") or str(path), set()).add(str(job_id))
    # fuse auto on a CPU fuses small MLPs: the two seeds of each batch-norm setting train as one
    # fused job, so 4 runs are 2 SLURM jobs. One job per planned group, each a train job that SLURM
    # saw complete, and a group's members share their job.
    assert len(groups) == 2, groups
    assert all(len(ids) == 1 for ids in groups.values()), groups
    assert len(job_ids) == len(groups), job_ids
    states = {j["id"]: j["state"] for j in train_jobs(cluster)}
    for job_id, paths in job_ids.items():
        assert states.get(job_id) == "COMPLETED", (paths, job_id, states)


def test_cancelled_training_job_is_retried_and_resumes(cluster, work, request):
    start = time.monotonic()
    results = work / "res"
    config = {
        "results": str(results),
        "data": {"val_size": 300},  # as in smoke.yaml: the prepared digits data is reused
        "execution": {"checkpoint_every_steps": 20},
        "defaults": {"dataset": "digits", "model": "mlp", "widths": [64, 64], "batch_size": 32,
                     "epochs": 60, "evals_per_epoch": 1},
        "studies": {"resume": {"title": "Resume on SLURM", "question": "Does a cancelled run resume?"}},
    }
    config_file = work / "resume.yaml"
    config_file.write_text(yaml.safe_dump(config))
    args = snakemake_args(cluster, work, "--configfile", str(config_file), "--until", "train")
    log_file = work / "resume-snakemake.log"
    with open(log_file, "w") as log:
        proc = subprocess.Popen(args, cwd=ROOT, env=cluster.env(), stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        # Wait for the train job to run and write its first checkpoint, then cancel it.
        run_dir, job_id = None, None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            running = [j for j in train_jobs(cluster) if j["state"] == "RUNNING"]
            checkpoints = [p for p in results.glob("runs/**/checkpoint.pt")
                           if not (p.parent / "metrics.json").exists()]
            if running and checkpoints:
                run_dir, job_id = checkpoints[0].parent, running[0]["id"]
                break
            time.sleep(0.2)
        assert job_id is not None, "no running train job with a checkpoint\n" + explain(
            cluster, work, log_file.read_text())
        cluster.run("scancel", job_id)
        report(request, f"cancelled SLURM job {job_id} at {time.monotonic() - start:.1f} s, "
                        f"checkpoint {run_dir / 'checkpoint.pt'}")
        rc = proc.wait(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.terminate()  # snakemake cancels its SLURM jobs on SIGTERM
            proc.wait(timeout=60)
    output = log_file.read_text()
    assert rc == 0, explain(cluster, work, output)
    report(request, f"cancel, retry and resume: {time.monotonic() - start:.1f} s")

    states = {j["id"]: j["state"] for j in train_jobs(cluster)}
    assert states[job_id] == "CANCELLED", states
    assert "Trying to restart job" in output, output[-3000:]  # the profile's retries
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "ok", metrics
    retried = str(metrics["slurm_job_id"])
    assert retried != job_id and states.get(retried) == "COMPLETED", (job_id, retried, states)
    train_log = (run_dir / "train.log").read_text()
    resumed = re.findall(r"resumed from checkpoint at step (\d+)", train_log)
    assert resumed and int(resumed[-1]) > 0, train_log[-3000:]
    if "resumed_from_step" in metrics:
        assert metrics["resumed_from_step"] == int(resumed[-1]), metrics


def test_three_fused_groups_one_job_at_a_time_keep_their_rules_on_the_node(cluster, work, request):
    """A cluster job reads the workflow again on its node after earlier groups have finished: every group's
    rule must still be there, under the name the submitting side gave it (issue: UnknownRuleException)."""
    start = time.monotonic()
    results = work / "res-fused"
    config = {
        "results": str(results),
        "data": {"val_size": 300},  # as in smoke.yaml: the prepared digits data is reused
        # 13 runs at most 4 a job: 4 + 4 + 4 + one alone. Cut again from the 9 left after any group has
        # finished, they would be 3 + 3 + 3 under other names: what a node read before groups were cut
        # from every run of the config
        "execution": {"fuse": 4},
        "defaults": {"dataset": "digits", "model": "mlp", "widths": [32, 32], "batch_size": 64, "epochs": 1,
                     "evals_per_epoch": 1},
        "studies": {"fused": {"title": "Fused groups on SLURM", "question": "Does every group find its rule?",
                              "seeds": list(range(13))}},
    }
    config_file = work / "fused.yaml"
    config_file.write_text(yaml.safe_dump(config))
    args = snakemake_args(cluster, work, "--configfile", str(config_file))
    plan = subprocess.run(args + ["-n"], cwd=ROOT, env=cluster.env(), capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    planned = sorted(set(re.findall(r"rule (fused_[0-9a-f]+):", plan.stdout)))
    assert len(planned) == 3, plan.stdout[-3000:]
    # the training jobs only (the report is tested above), one at a time: the second and third jobs read
    # the workflow on the node after the groups before them finished
    out = subprocess.run(args + ["--until", "train", *planned, "--jobs", "1"], cwd=ROOT, env=cluster.env(),
                         capture_output=True, text=True, timeout=TIMEOUT)
    output = out.stdout + out.stderr
    assert out.returncode == 0, explain(cluster, work, output)
    assert "UnknownRuleException" not in output
    report(request, f"3 fused groups, one SLURM job at a time: {time.monotonic() - start:.1f} s; groups {planned}")

    metrics = [json.loads(p.read_text()) for p in sorted(results.glob("runs/**/metrics.json"))]
    assert len(metrics) == 13
    trained_in = {}
    for m in metrics:
        if not m.get("fused"):
            continue  # the run left over trains alone
        trained_in.setdefault(m["fused"]["group"], set()).add(str(m["slurm_job_id"]))
    assert sorted(trained_in) == planned  # the node ran each group under the submitting side's name
    assert all(len(ids) == 1 for ids in trained_in.values()), trained_in
    jobs = {j["id"]: j for j in train_jobs(cluster)}
    for group, (job_id,) in trained_in.items():
        assert jobs[job_id]["state"] == "COMPLETED", jobs[job_id]
        assert jobs[job_id]["comment"].startswith(f"rule_{group}"), jobs[job_id]
