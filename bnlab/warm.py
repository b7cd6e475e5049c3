"""The warm server: one process imports torch, pandas, matplotlib and bnlab once; jobs run in forks of it.

A training or analysis job's own work is seconds, and importing torch, pandas,
pyarrow and matplotlib costs a fresh Python process about as much again
(bench/default_run.py: 4.2 s of every train job went outside the run itself).
On a local run the Snakefile starts this server when the workflow starts and
stops it when the workflow ends; a job's script (scripts/train.py,
scripts/analysis.py) sends "call this function with these arguments, log
here" over a Unix socket and waits, and the server forks a child that makes
the call (the same function the job calls when it runs by itself) and reports
the child's exit status back.

What stays as it was: one Snakemake job per grid cell or analysis and one run
folder per cell, so Snakemake reruns exactly what is missing or out of date,
a failing job fails alone, and a killed run resumes from its checkpoint. A
child is a fork of a server that has imported modules and done nothing else
(no tensor work, no CUDA, no threads), so its results are those of a fresh
process: a run seeds every generator it uses (tests/test_warm.py compares the
two paths).

The server is single-threaded (forking a threaded process is unsafe) and
stops when asked, or on its own when the Snakemake process that started it is
gone. A job whose client goes away (Snakemake killed the job) has its child
killed. Where no server runs (SLURM jobs, --use-conda, execution.warm_server:
false, a server that died) the job runs in its own process.

Requests are pickled: the socket lives in a fresh 0700 folder of this user's,
and only this workflow's jobs are told where.

  python -m bnlab.warm --socket PATH --parent PID    (started by start())
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pickle
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ENV = "BNLAB_WARM_SERVER"  # the socket path, for the jobs of the workflow that started it
# imported by the server before it accepts a job, so that no child pays for them: matplotlib
# with the Agg backend the figures use; bnlab.analyses loads every analysis; torch._dynamo and
# torch._inductor are what torch.use_deterministic_algorithms imports on its first call, about
# 2 s that every run paid (profiled with cProfile in a fresh process)
WARM_MODULES = ("torch", "torch.nn.functional", "torch._dynamo", "torch._inductor", "pandas", "pyarrow.parquet",
                "jsonschema", "yaml", "matplotlib", "matplotlib.pyplot", "seaborn", "bnlab.train.job",
                "bnlab.analyses")
POLL_S = 0.2  # how often the server reaps children and checks its parent


# ------------------------------------------------------------------ client side

def submit(target: str, kwargs: dict, log: str | Path, connect_timeout: float = 10.0) -> int | None:
    """Have the warm server call target ("module:function") with kwargs, its output in `log`, and wait.

    The child's exit status (0: the call returned), or None when there is no
    server to ask: the caller then makes the call in its own process.
    """
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
        payload = pickle.dumps({"target": target, "kwargs": kwargs, "log": str(log)})
        client.sendall(len(payload).to_bytes(8, "big") + payload)
        reply = client.makefile("rb").readline()
    if not reply:
        return None  # the server died mid-run; the caller's own attempt resumes from the checkpoint
    return int(json.loads(reply)["exit"])


def run_job(target: str, kwargs: dict, log: str | Path) -> None:
    """A Snakemake script's whole job: have the warm server call target ("module:function") with kwargs, or
    where none answers make the call in this process with its output in `log`; exit with the child's
    status when the call failed (the log has the traceback)."""
    code = submit(target, kwargs, log)
    if code is None:  # no warm server to ask: call here
        sys.stderr = sys.stdout = open(log, "w", buffering=1)
        call_target(target, kwargs)
    elif code != 0:
        sys.exit(code)


def start(log_path: str | Path, wait_s: float = 10.0) -> subprocess.Popen | None:
    """Start the server for this process's workflow and export its socket to the jobs; None if it fails."""
    folder = tempfile.mkdtemp(prefix="bnlab-warm-")  # short path (sockets allow ~100 bytes), mode 0700
    path = os.path.join(folder, "train.sock")
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "bnlab.warm", "--socket", path, "--parent", str(os.getpid())],
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

def call_target(target: str, kwargs: dict):
    """Import "module:function" and call it with kwargs."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)(**kwargs)


def _read_request(conn: socket.socket) -> dict | None:
    stream = conn.makefile("rb")
    head = stream.read(8)
    if len(head) < 8:
        return None
    return pickle.loads(stream.read(int.from_bytes(head, "big")))


def _run_child(request: dict) -> int:
    """In the forked child: the job's log as stdout/stderr, the call, exit status."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    Path(request["log"]).parent.mkdir(parents=True, exist_ok=True)
    log = open(request["log"], "w", buffering=1)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    try:
        call_target(request["target"], request["kwargs"])
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
    os.environ.setdefault("MPLBACKEND", "Agg")  # what the figures use; no display here
    for name in WARM_MODULES:
        importlib.import_module(name)
    from bnlab.provenance import code_version, library_versions

    # cached before any fork: the code every child runs is the code imported now
    code_version(), library_versions()
    print(f"warm server: {', '.join(WARM_MODULES)} imported in {time.perf_counter() - t0:.1f} s; "
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
                    request = _read_request(conn)
                    if request is None:
                        conn.close()
                        continue
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
                    print(f"pid {pid}: {request['target']} -> {request['log']}", flush=True)
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
        print("warm server: stopped", flush=True)


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
