"""The warm server (bnlab.warm): a fork of one warm process trains a run as a job's own process would."""

import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from bnlab import runfolder
from bnlab import warm
from bnlab.train.job import train_job

ROOT = Path(__file__).resolve().parents[1]
TIMING = ["train_seconds", "wall_seconds"]
TRAIN = "bnlab.train.job:train_job"


def submit_train(request):
    return warm.submit(TRAIN, {"request": request}, request["logs"][0])


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.delenv(warm.ENV, raising=False)
    proc = warm.start(tmp_path / "warm.log")
    assert proc is not None and os.environ[warm.ENV]
    yield proc, tmp_path / "warm.log"
    warm.stop(proc)


def request_for(spec, data, out_dir):
    """The request of `train`'s job for spec, its run folder under out_dir (the job reads the run from its name)."""
    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    folder = Path(out_dir) / spec.relative_dir()
    return {"group": "train", "data": str(data), "out_dirs": [str(folder)], "logs": [str(folder / "train.log")],
            "threads": 1, "picks": [], "config": config}


def folder_of(request) -> Path:
    return Path(request["out_dirs"][0])


def test_a_fork_of_the_warm_trainer_trains_like_the_job_itself(server, tmp_path, digits_path, make_spec):
    spec = make_spec(bn="hidden", dropout_hidden=0.2, eval_size=100)
    warm_request = request_for(spec, digits_path, tmp_path / "warm")
    own_request = request_for(spec, digits_path, tmp_path / "own")
    assert submit_train(warm_request) == 0
    with open(tmp_path / "own.log", "w") as log:
        train_job(own_request, log)
    a, b = runfolder.load_run(folder_of(warm_request)), runfolder.load_run(folder_of(own_request))
    pd.testing.assert_frame_equal(a.history.drop(columns=TIMING), b.history.drop(columns=TIMING))
    pd.testing.assert_frame_equal(a.steps(), b.steps())
    assert a.metrics["final_test_acc"] == b.metrics["final_test_acc"]
    assert "done: status ok" in (folder_of(warm_request) / "train.log").read_text()
    assert "pid " in server[1].read_text()  # it really went through the server


def test_a_failing_job_fails_alone_with_its_traceback_in_its_log(server, tmp_path, digits_path, make_spec):
    bad = request_for(make_spec(), tmp_path / "no-such-data.pt", tmp_path / "bad")
    folder_of(bad).mkdir(parents=True)
    assert submit_train(bad) == 1
    assert "Traceback" in (folder_of(bad) / "train.log").read_text()
    # the server goes on serving
    good = request_for(make_spec(epochs=1), digits_path, tmp_path / "good")
    assert submit_train(good) == 0
    assert (folder_of(good) / runfolder.METRICS).exists()


def test_a_cancelled_job_has_its_child_killed(server, tmp_path, digits_path, make_spec):
    long = request_for(make_spec(epochs=200), digits_path, tmp_path / "cancelled")
    out = folder_of(long)
    out.mkdir(parents=True)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(os.environ[warm.ENV])
    payload = pickle.dumps({"target": TRAIN, "kwargs": {"request": long}, "log": long["logs"][0]})
    client.sendall(len(payload).to_bytes(8, "big") + payload)
    deadline = time.monotonic() + 60
    log = out / "train.log"
    while not (log.exists() and "epoch" in log.read_text()):
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.1)
    client.close()  # what Snakemake killing the job's process amounts to
    deadline = time.monotonic() + 20
    while "child killed" not in server[1].read_text():
        assert time.monotonic() < deadline, server[1].read_text()
        time.sleep(0.1)
    time.sleep(0.5)
    assert not (out / runfolder.METRICS).exists()


def test_without_a_server_a_job_trains_in_its_own_process(monkeypatch, tmp_path):
    monkeypatch.delenv(warm.ENV, raising=False)
    assert warm.submit("os:getpid", {}, tmp_path / "log") is None
    monkeypatch.setenv(warm.ENV, str(tmp_path / "gone.sock"))  # a server that has stopped
    assert warm.submit("os:getpid", {}, tmp_path / "log") is None


def test_the_server_stops_when_its_workflow_is_gone(tmp_path):
    path = tmp_path / "s.sock"
    # --parent names a process that is not its parent: as if Snakemake had died
    proc = subprocess.Popen([sys.executable, "-m", "bnlab.warm", "--socket", str(path), "--parent", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "stopped" in out
    assert not path.exists()


@pytest.mark.slow
def test_a_workflow_stopped_mid_run_resumes_the_run_from_its_checkpoint(tmp_path):
    """Ctrl-C on a local workflow: the fork training the run is killed, its checkpoint stays,
    and the next invocation resumes from it (through a new warm server)."""
    config = {
        "results": str(tmp_path / "res"), "data": {"val_size": 300},
        "execution": {"checkpoint_every_steps": 20},
        "defaults": {"dataset": "digits", "model": "mlp", "widths": [64, 64], "batch_size": 32, "epochs": 400},
        "studies": {"long": {"title": "long", "question": "q", "source": "test", "grid": {"bn": ["none"]},
                             "seeds": [0]}},
    }
    cfg = tmp_path / "long.yaml"
    cfg.write_text(yaml.safe_dump(config))
    from bnlab.workflow import load_plan

    run = tmp_path / "res" / "runs" / load_plan(config).runs[0].relative_dir()
    # the target before --configfile, which takes every argument after it
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", str(run / runfolder.METRICS), "--configfile", str(cfg)]
    # Ctrl-C's default action, even where this test itself runs with SIGINT ignored (a background
    # job of a non-interactive shell): ignored signals stay ignored across exec.
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    log = run / "train.log"
    while time.monotonic() < deadline:
        if (run / "checkpoint.pt").exists() and log.exists() and "epoch 2.00/" in log.read_text():
            break
        assert proc.poll() is None, "the workflow ended before it could be stopped"
        time.sleep(0.2)
    else:
        pytest.fail("no checkpoint within 2 minutes")
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends to the whole group
    proc.wait(timeout=60)
    assert (run / "checkpoint.pt").exists() and not (run / runfolder.METRICS).exists()
    time.sleep(1)
    assert not [p for p in psutil_children_named("bnlab.warm")], "a warm server outlived its workflow"
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    text = (run / "train.log").read_text()
    assert "resumed from checkpoint at step" in text and "done: status ok" in text
    assert runfolder.load_run(run).metrics["resumed_from_step"] > 0


def psutil_children_named(name):
    """Processes whose command line mentions `name` (from /proc; no psutil needed)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if name in cmdline and "pytest" not in cmdline:
                found.append(int(proc.name))
    return found
