"""A throw-away one-node SLURM cluster on localhost, for tests/test_slurm.py.

Debian's SLURM (22.05) and munge run as three foreground processes owned by
this Python process (munged, slurmctld, slurmd), each started with Popen so its
PID is known and it is reaped when stopped. Everything lives under one folder:
the munge key and socket, a generated slurm.conf (one node with this
machine's CPUs and memory as `slurmd -C` reports them, one partition), state,
spool and logs, and `bin/srun`, a wrapper that puts SLURM_CONF back for the
slurm-jobstep executor (it strips every SLURM_* variable before its inner srun,
and our slurm.conf is not in /etc/slurm).

    cluster = SlurmCluster(folder)
    cluster.start()              # returns once the node is idle
    subprocess.run([...], env=cluster.env())
    cluster.stop()               # cancels jobs, stops the daemons by PID
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

APT_PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
# Programs the harness and the Snakemake slurm executor call.
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "sinfo", "scancel", "scontrol")
SBIN = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
PARTITION = "bnlabtest"
# The Snakemake slurm executor reads job states from `squeue` (no slurmdbd
# here), which shows a finished job for MinJobAge seconds; the plugin wants
# at least 3x its status-check interval.
MIN_JOB_AGE = 300


def which(program: str) -> str | None:
    return shutil.which(program) or shutil.which(program, path=os.pathsep.join(SBIN))


def missing_programs() -> list[str]:
    return [p for p in PROGRAMS if which(p) is None]


def ensure_installed(log=print) -> str | None:
    """Install Debian's SLURM and munge where missing. None when ready, else why not."""
    if os.geteuid() != 0:
        return "needs root: slurmd runs as root, and apt-get installs the SLURM packages"
    missing = missing_programs()
    if not missing:
        return None
    if shutil.which("apt-get") is None:
        return f"SLURM programs missing ({', '.join(missing)}) and apt-get is unavailable"
    log(f"installing {' '.join(APT_PACKAGES)} with apt-get (missing: {', '.join(missing)})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *APT_PACKAGES]
    # Packages must not start system daemons (a munged or slurmctld from
    # /etc/init.d would outlive the test): deny service starts while installing.
    policy = Path("/usr/sbin/policy-rc.d")
    own_policy = not policy.exists()
    if own_policy:
        policy.write_text("#!/bin/sh\n# written by bnlab tests/slurm_cluster.py during apt-get install\nexit 101\n")
        policy.chmod(0o755)
    try:
        out = subprocess.run(install, env=env, capture_output=True, text=True)
        if out.returncode != 0:  # stale or empty package lists: refresh once
            update = subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True)
            out = subprocess.run(install, env=env, capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(
                    "apt-get install of SLURM failed:\n" + update.stderr[-2000:] + out.stdout[-3000:] + out.stderr[-3000:]
                )
    finally:
        if own_policy:
            policy.unlink(missing_ok=True)
    still = missing_programs()
    if still:
        raise RuntimeError(f"after apt-get install, still missing: {', '.join(still)}")
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_hardware() -> dict[str, str]:
    """This machine as slurmd sees it (`slurmd -C`): CPUs, sockets, cores, threads, RealMemory."""
    out = subprocess.run([which("slurmd"), "-C"], capture_output=True, text=True, timeout=30)
    fields = dict(tok.split("=", 1) for tok in out.stdout.split() if "=" in tok) if out.returncode == 0 else {}
    keep = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory")
    hw = {k: fields[k] for k in keep if k in fields}
    if "CPUs" not in hw or "RealMemory" not in hw:  # fall back to what Python sees
        mem_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal:"))
        hw = {"CPUs": str(os.cpu_count() or 1), "RealMemory": str(mem_kb // 1024)}
    # slurmd drains a node that reports less memory than configured; stay a bit below.
    hw["RealMemory"] = str(int(int(hw["RealMemory"]) * 0.95))
    return hw


class SlurmCluster:
    """munged + slurmctld + slurmd under `folder`; see the module docstring."""

    def __init__(self, folder: Path, log=print):
        self.folder = Path(folder)
        self.log = log
        self.procs: dict[str, subprocess.Popen] = {}
        self.node = socket.gethostname().split(".")[0]
        self.partition = PARTITION
        self.conf = self.folder / "etc" / "slurm.conf"
        self.bin = self.folder / "bin"
        # munged wants every folder above its socket searchable by all (pytest's
        # tmp folders are 0700) and a unix socket path is limited to 108 bytes:
        # so munge gets its own short folder in /tmp, removed by stop().
        self.munge_dir = Path(tempfile.mkdtemp(prefix="bnlab-munge-", dir="/tmp"))
        self.socket = self.munge_dir / "munge.socket.2"

    # -- environment for clients ------------------------------------------
    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for SLURM clients and Snakemake: SLURM_CONF, and our srun wrapper first on PATH."""
        env = dict(os.environ if base is None else base)
        for key in [k for k in env if k.startswith("SLURM_")]:
            del env[key]  # never inherit another cluster's job context
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = os.pathsep.join([str(self.bin), env.get("PATH", ""), *SBIN])
        return env

    def run(self, *args: str, check=True, timeout=30) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), env=self.env(), capture_output=True, text=True, timeout=timeout, check=check)

    # -- start ---------------------------------------------------------------
    def start(self, timeout: float = 60) -> None:
        for sub in ("etc", "state", "spool", "log", "bin"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        # munged insists: socket folder 0755, key 0600 and owned by its user.
        self.munge_dir.chmod(0o755)
        key = self.munge_dir / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        self._write_conf()
        self._write_srun_wrapper()

        self._spawn("munged", [
            which("munged"), "--foreground", f"--key-file={key}", f"--socket={self.socket}",
            f"--pid-file={self.munge_dir / 'munged.pid'}", f"--log-file={self.folder / 'log' / 'munged.log'}",
            f"--seed-file={self.munge_dir / 'munged.seed'}",
        ])
        self._wait(lambda: self.socket.is_socket(), 15, "munged socket")
        self._spawn("slurmctld", [which("slurmctld"), "-D", "-c", "-i", "-f", str(self.conf)])
        self._wait(lambda: self.run("scontrol", "ping", check=False).returncode == 0, timeout, "slurmctld to answer")
        self._spawn("slurmd", [which("slurmd"), "-D", "-N", self.node, "-f", str(self.conf)])
        self._wait(self._node_idle, timeout, f"node {self.node} to be idle")
        self.log(f"SLURM up under {self.folder}: " + ", ".join(f"{n} pid {p.pid}" for n, p in self.procs.items()))

    def _write_conf(self) -> None:
        hw = node_hardware()
        node_hw = " ".join(f"{k}={v}" for k, v in hw.items())
        f = self.folder
        self.conf.write_text(f"""\
# Generated by bnlab tests/slurm_cluster.py: a one-node cluster on localhost.
ClusterName=bnlabtest
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser={_user()}
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.socket}
StateSaveLocation={f}/state
SlurmdSpoolDir={f}/spool/slurmd-%n
SlurmctldPidFile={f}/state/slurmctld.pid
SlurmdPidFile={f}/spool/slurmd-%n.pid
SlurmctldLogFile={f}/log/slurmctld.log
SlurmdLogFile={f}/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# No cgroups in a container: track job processes by parent PID, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# No slurmdbd: no accounting (Snakemake's slurm executor then queries squeue).
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
# A finished job stays visible to squeue this long (>= 3x the status-check interval).
MinJobAge={MIN_JOB_AGE}
# scancel: SIGTERM, then SIGKILL after KillWait seconds.
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName={self.node} NodeAddr=127.0.0.1 {node_hw} State=UNKNOWN
PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
""")

    def _write_srun_wrapper(self) -> None:
        srun = self.bin / "srun"
        srun.write_text(f"#!/bin/sh\n# the slurm-jobstep executor drops SLURM_CONF; put it back\n"
                        f"SLURM_CONF={self.conf} exec {which('srun')} \"$@\"\n")
        srun.chmod(0o755)

    def _spawn(self, name: str, argv: list[str]) -> None:
        out = open(self.folder / "log" / f"{name}.stdout", "wb")
        self.procs[name] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=self.env(),
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode} while waiting for {what}\n{self.logs()}")
            if ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"timed out after {timeout} s waiting for {what}\n{self.logs()}")

    def _node_idle(self) -> bool:
        out = self.run("sinfo", "-h", "-n", self.node, "-o", "%T", check=False)
        return out.returncode == 0 and out.stdout.strip() == "idle"

    # -- queries ---------------------------------------------------------------
    def jobs(self) -> list[dict[str, str]]:
        """Every job slurmctld still knows: id, state, name, comment (Snakemake puts the rule there)."""
        out = self.run("squeue", "-h", "--states=all", "-o", "%i|%T|%j|%k")
        rows = [line.split("|", 3) for line in out.stdout.splitlines() if line.strip()]
        return [dict(zip(("id", "state", "name", "comment"), row)) for row in rows]

    def logs(self, lines: int = 25) -> str:
        parts = []
        for path in sorted((self.folder / "log").glob("*")):
            if path.is_file():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(parts)

    # -- stop ------------------------------------------------------------------
    def stop(self) -> None:
        """Cancel our jobs, then stop slurmd, slurmctld and munged by PID and wait for each."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            try:
                self.run("scancel", f"--user={_user()}", check=False)
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    if not [j for j in self.jobs() if j["state"] in ("RUNNING", "COMPLETING", "PENDING")]:
                        break
                    time.sleep(0.2)
            except Exception as err:  # stopping must go on regardless
                self.log(f"cancelling jobs failed: {err}")
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
        shutil.rmtree(self.munge_dir, ignore_errors=True)
        stopped = ", ".join(f"{n} pid {p.pid} rc {p.returncode}" for n, p in self.procs.items())
        self.log(f"SLURM stopped: {stopped}")


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name
