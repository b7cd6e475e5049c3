"""The warm trainer: one process imports torch and bnlab once; every training job runs in a fork of it.

A training job's own work is seconds, and importing torch, pandas and pyarrow
costs a fresh Python process about as much again (measured in bench/). On a
local run the Snakefile starts this server when the workflow starts and stops
it when the workflow ends; each train job's script (scripts/train.py) then
sends its request over a Unix socket and waits, and the server forks a child
that trains the run (bnlab.train.job.train_job, the same function a job runs
by itself) and reports the child's exit status back.

What stays as it was: one Snakemake job and one run folder per grid cell, so
Snakemake reruns exactly the missing cells, a failing cell fails alone, and a
killed job resumes from its checkpoint. A child is a fresh fork of a server
that has imported modules and done nothing else (no tensor work, no CUDA, no
threads), so its results are those of a fresh process: the run seeds every
generator it uses (tests/test_warm.py compares the two paths).

The server is single-threaded (forking a threaded process is unsafe) and
stops when asked, or on its own when the Snakemake process that started it is
gone. A job whose client goes away (Snakemake killed the job) has its child
killed. Where no server runs (SLURM jobs, --use-conda, execution.warm_start:
false, a killed server) the job trains in its own process.

  python -m bnlab.train.warm --socket PATH --parent PID    (started by start())
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ENV = "BNLAB_WARM_TRAINER"  # the socket path, for the jobs of the workflow that started it
# imported by the server before it accepts a job, so that no child pays for them
WARM_MODULES = ("torch", "torch.nn.functional", "pandas", "pyarrow.parquet", "jsonschema", "yaml",
                "bnlab.train.job")
POLL_S = 0.2  # how often the server reaps children and checks its parent


# ------------------------------------------------------------------ client side

def submit(request: dict, connect_timeout: float = 10.0) -> int | None:
    """Hand a job to the warm trainer and wait; its exit status, or None when there is none to ask."""
    path = os.environ.get(ENV)
    if not path:
        return None
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(connect_timeout)
    try:
        client.connect(path)
    except OSError:
        client.close()
        return None  # gone (killed, or stopped): the caller trains in its own process
    client.settimeout(None)  # a run takes as long as it takes
    with client:
        client.sendall(json.dumps(request).encode() + b"\n")
        reply = client.makefile("rb").readline()
    if not reply:
        return None  # the server died mid-run; the caller's own attempt resumes from the checkpoint
    return int(json.loads(reply)["exit"])


def start(log_path: str | Path, wait_s: float = 10.0) -> subprocess.Popen | None:
    """Start the server for this process's workflow and export its socket to the jobs; None if it fails."""
    folder = tempfile.mkdtemp(prefix="bnlab-warm-")  # short path (sockets allow ~100 bytes), mode 0700
    path = os.path.join(folder, "train.sock")
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "bnlab.train.warm", "--socket", path, "--parent", str(os.getpid())],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    deadline = time.monotonic() + wait_s
    while not os.path.exists(path):  # bound before its imports, so this is the interpreter's start only
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            return None
        time.sleep(0.02)
    os.environ[ENV] = path
    return proc


def stop(proc: subprocess.Popen | None) -> None:
    """Stop the server (its running children are killed) and forget its socket."""
    path = os.environ.pop(ENV, None)
    if proc is None:
        return
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    if path:
        Path(path).unlink(missing_ok=True)
        try:
            os.rmdir(os.path.dirname(path))
        except OSError:
            pass


# ------------------------------------------------------------------ server side

def _run_child(request: dict) -> int:
    """In the forked child: the job's log as stdout/stderr, train, exit status."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    Path(request["log"]).parent.mkdir(parents=True, exist_ok=True)
    log = open(request["log"], "w", buffering=1)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    try:
        from bnlab.train.job import train_job

        train_job(request, log)
        return 0
    except BaseException:  # noqa: BLE001 - the job's log says why, the exit status that it failed
        traceback.print_exc(file=log)
        return 1
    finally:
        log.flush()


def serve(path: str, parent: int) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)  # first: jobs may connect (and queue) while the imports below run
    listener.listen(128)
    t0 = time.perf_counter()
    import importlib

    for name in WARM_MODULES:
        importlib.import_module(name)
    print(f"warm trainer: {', '.join(WARM_MODULES)} imported in {time.perf_counter() - t0:.1f} s; "
          f"serving {path}", flush=True)

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    children: dict[int, socket.socket] = {}  # pid -> the client waiting for it
    try:
        while not stopping and os.getppid() == parent:
            for key, _ in sel.select(timeout=POLL_S):
                if key.data is None:
                    conn, _ = listener.accept()
                    line = conn.makefile("rb").readline()
                    if not line:
                        conn.close()
                        continue
                    request = json.loads(line)
                    pid = os.fork()
                    if pid == 0:  # child: never returns into the server's loop
                        code = 1
                        try:
                            sel.close()
                            listener.close()
                            conn.close()
                            for other in children.values():
                                other.close()
                            code = _run_child(request)
                        finally:
                            os._exit(code)
                    children[pid] = conn
                    sel.register(conn, selectors.EVENT_READ, pid)
                    print(f"pid {pid}: {request.get('out_dir')}", flush=True)
                else:  # a waiting client spoke or hung up: its job was cancelled
                    pid, conn = key.data, key.fileobj
                    sel.unregister(conn)
                    conn.close()
                    children.pop(pid, None)
                    _kill(pid)
                    print(f"pid {pid}: client gone, child killed", flush=True)
            _reap(children, sel)
    finally:
        for pid in list(children):
            _kill(pid)
        listener.close()
        Path(path).unlink(missing_ok=True)
        print("warm trainer: stopped", flush=True)


def _reap(children: dict[int, socket.socket], sel: selectors.BaseSelector) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = os.waitstatus_to_exitcode(status)
        conn = children.pop(pid, None)
        if conn is None:
            continue  # a child killed because its client left
        sel.unregister(conn)
        try:
            conn.sendall(json.dumps({"exit": code}).encode() + b"\n")
        except OSError:
            pass
        conn.close()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", required=True)
    ap.add_argument("--parent", type=int, required=True, help="stop when this process is gone")
    args = ap.parse_args(argv)
    serve(args.socket, args.parent)


if __name__ == "__main__":
    main()
