"""Where a whole workflow run's time goes: wall time and the split of job-slot time.

Runs `snakemake --cores N --configfile CONFIG --config results=DIR` from an empty
DIR (the default config unless told otherwise), times it, keeps the Snakemake
log, and splits the job-slot time (cores x wall) into

  optimizer steps      sum over training runs of metrics.json train_seconds
  evaluation           derived from history.parquet (bnlab records no eval timer; see below)
  other in-process     execute_run's wall_seconds minus the two above (load data, build
                       the model, the loop's extras, summaries)
  start-up and         job-slot time minus everything in-process and the other jobs:
    scheduling           in train jobs: the job's wall in the Snakemake log minus execute_run's
                           wall_seconds (interpreter, imports, config check, writing the run
                           folder, Snakemake's job start and finish)
                         idle slots: slot time in which no job ran (DAG building, waiting for
                           dependencies, the final jobs running one at a time)
  other jobs           non-train jobs (prepare_data, analyses, report), their wall from the log

Evaluation is derived: every history row records the loop's train_seconds and
wall_seconds at the moment an evaluation starts, so the time between two
evaluations that is not training is the earlier evaluation's duration. The last
evaluation (val + test at the end) has no later row: it is estimated from the
others' seconds per evaluated sample times the samples it evaluates (split sizes
from the run's train.log). A metrics.json `eval_seconds`, if bnlab ever records
one, is used instead.

Analysis only, of a run made earlier (nothing is run):

  .venv/bin/python bench/default_run.py --from-log LOG --results DIR [--wall SECONDS] [--cores N]

Run and analyse:

  .venv/bin/python bench/default_run.py [--configfile config.yaml] [--cores 2] [--results DIR] [--reuse]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The targets ("Default config inside 10 minutes").
TARGET_WALL_S = 600.0  # on 2 cores: `make` (config.yaml, the quick scale)
TARGET_WALLS = {"reproduce": 1800.0}  # `make reproduce` (config/reproduce.yaml): 30 minutes; by config file stem
TARGET_OPT_SHARE = 0.60  # optimizer steps, of job-slot time (at least)
TARGET_STARTUP_SHARE = 0.10  # start-up and scheduling, of job-slot time (at most)

TRAIN_RULE = "train"

_TIMESTAMP = re.compile(r"^\[(\w{3} \w{3} +\d{1,2} \d\d:\d\d:\d\d \d{4})\]\s*$")
_RULE = re.compile(r"^(local)?rule (\S+):\s*$")
_FIELD = re.compile(r"^\s+(\w+): (.*)$")
_FINISHED = re.compile(r"^Finished job(?:id:)? (\d+)\b")  # Snakemake 9 "Finished jobid: 86 (Rule: train)", 7/8 "Finished job 86."
_ERROR = re.compile(r"^Error in rule (\S+):\s*$")
_CORES = re.compile(r"^Provided cores: (\d+)")
_SM_ELAPSED = re.compile(r"^Elapsed time: (?:(\d+) days?, )?(\d+):(\d\d):(\d\d(?:\.\d+)?)\s*$")
_CONFIGS = re.compile(r"^\s*Config file\(s\): (.*)$")
_TIME_ELAPSED = re.compile(r"^\s*Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)\s*$")
_TIME_RSS = re.compile(r"^\s*Maximum resident set size \(kbytes\): (\d+)")
_TIME_CPU = re.compile(r"^\s*Percent of CPU this job got: (\d+)%")
_PROGRESS = re.compile(r"^\d+ of \d+ steps \(.*\) done")
_SPLITS = re.compile(r"\btrain (\d+) val (\d+) test (\d+)\b")


# --------------------------------------------------------------------------- the Snakemake log

def parse_timestamp(text: str) -> datetime:
    """'Wed Dec  2 16:56:47 2026' (Snakemake's job timestamp) -> datetime."""
    return datetime.strptime(text, "%a %b %d %H:%M:%S %Y")


def parse_clock(text: str) -> float:
    """'24:44.22', '1:02:03' or '0:24:40.433243' -> seconds."""
    seconds = 0.0
    for part in text.strip().split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


@dataclass
class Job:
    jobid: int
    rule: str
    threads: int = 1  # Snakemake prints "threads:" only when it is above 1
    log: str | None = None
    output: str | None = None
    attempts: list[list] = field(default_factory=list)  # [start, end or None, "ok" / "failed" / None]

    @property
    def seconds(self) -> float:
        """Wall time of its finished (or failed) attempts, from the log's timestamps."""
        return sum((end - start).total_seconds() for start, end, _ in self.attempts if end is not None)

    @property
    def finished(self) -> bool:
        return bool(self.attempts) and self.attempts[-1][2] == "ok"

    @property
    def run_dir(self) -> tuple[str, ...] | None:
        """The run folder below <results>/runs/ (train jobs), from its log or output paths."""
        paths = [self.log] if self.log else []
        paths += [p.strip() for p in (self.output or "").split(",")]
        for path in paths:
            parts = Path(path).parts
            for i in range(len(parts) - 2):
                if parts[i] == "runs" and parts[i + 1].startswith("dataset~"):
                    return parts[i + 1 : -1]
        return None


@dataclass
class SnakemakeLog:
    jobs: dict[int, Job]
    cores: int | None = None
    configfiles: str | None = None
    snakemake_elapsed: float | None = None  # "Elapsed time:" that Snakemake prints at the end
    time_elapsed: float | None = None  # /usr/bin/time -v, when it wrapped snakemake
    peak_rss_kb: int | None = None
    cpu_percent: int | None = None
    first: datetime | None = None  # first and last job timestamps
    last: datetime | None = None


def parse_log(lines) -> SnakemakeLog:
    """Jobs (rule, jobid, threads, start/finish timestamps) and the run's totals from a Snakemake log.

    A job starts with "[timestamp]" then "rule X:" / "localrule X:" and indented
    fields (jobid, log, output, threads); it ends with "[timestamp]" then
    "Finished jobid: N" (or "Error in rule X:" with its jobid: a failed attempt).
    """
    out = SnakemakeLog(jobs={})
    stamp: datetime | None = None
    block: dict | None = None  # fields of the job or error block being read

    def close(block: dict) -> None:
        if "jobid" not in block:
            return
        jobid = int(block["jobid"])
        if block["kind"] == "error":
            attempts = out.jobs[jobid].attempts if jobid in out.jobs else []
            if attempts and attempts[-1][1] is None:
                attempts[-1][1], attempts[-1][2] = block["stamp"], "failed"
            return
        job = out.jobs.setdefault(jobid, Job(jobid, block["rule"]))
        job.threads = int(block.get("threads", job.threads))
        job.log, job.output = block.get("log", job.log), block.get("output", job.output)
        job.attempts.append([block["stamp"], None, None])

    for raw in lines:
        line = raw.rstrip("\n")
        if block is not None and (m := _FIELD.match(line)):
            block.setdefault(m.group(1), m.group(2))
            continue
        if block is not None:
            close(block)
            block = None
        if m := _TIMESTAMP.match(line):
            stamp = parse_timestamp(m.group(1))
            out.first = out.first or stamp
            out.last = stamp
        elif m := _RULE.match(line):
            if stamp is not None:
                block = {"kind": "job", "rule": m.group(2), "stamp": stamp}
        elif m := _ERROR.match(line):
            block = {"kind": "error", "rule": m.group(1), "stamp": stamp}
        elif m := _FINISHED.match(line):
            job = out.jobs.get(int(m.group(1)))
            if job and job.attempts and job.attempts[-1][1] is None:
                job.attempts[-1][1], job.attempts[-1][2] = stamp, "ok"
        elif m := _CORES.match(line):
            out.cores = int(m.group(1))
        elif m := _CONFIGS.match(line):
            try:
                out.configfiles = ", ".join(ast.literal_eval(m.group(1)))
            except (ValueError, SyntaxError, TypeError):
                out.configfiles = m.group(1)
        elif m := _SM_ELAPSED.match(line):
            days, h, mi, sec = m.groups()
            out.snakemake_elapsed = int(days or 0) * 86400 + int(h) * 3600 + int(mi) * 60 + float(sec)
        elif m := _TIME_ELAPSED.match(line):
            out.time_elapsed = parse_clock(m.group(1))
        elif m := _TIME_RSS.match(line):
            out.peak_rss_kb = int(m.group(1))
        elif m := _TIME_CPU.match(line):
            out.cpu_percent = int(m.group(1))
    if block is not None:
        close(block)
    return out


# --------------------------------------------------------------------------- one run's timing fields

def derive_eval_seconds(history: list[dict], n_val: int | None, n_test: int | None) -> tuple[float, float, bool]:
    """(evaluation seconds, of which the estimated last evaluation, sizes known) from history rows.

    Each row has the loop's train_seconds and wall_seconds taken when an
    evaluation starts (all rows of one evaluation share them), so between two
    evaluations wall - train grows by the earlier evaluation's duration. The
    last one is estimated from the others' seconds per evaluated sample; without
    split sizes val and test count as equal.
    """
    events: dict[tuple[float, float], set[str]] = {}
    for row in history:
        events.setdefault((float(row["wall_seconds"]), float(row["train_seconds"])), set()).add(row["split"])
    if not events:
        return 0.0, 0.0, False
    ordered = sorted(events.items())
    sizes_known = n_val is not None and n_test is not None
    size = {"val": n_val if sizes_known else 1, "test": n_test if sizes_known else 1}

    def samples(splits: set[str]) -> int:
        return sum(size.get(s, 0) for s in splits)  # the "train" row costs nothing: recorded step losses

    (w_first, t_first), _ = ordered[0]
    (w_last, t_last), last_splits = ordered[-1]
    timed = (w_last - t_last) - (w_first - t_first)
    timed_samples = sum(samples(splits) for _, splits in ordered[:-1])
    last = timed / timed_samples * samples(last_splits) if timed_samples else 0.0
    return timed + last, last, sizes_known


@dataclass
class RunTiming:
    run_dir: str
    threads: int
    status: str | None
    train_seconds: float
    eval_seconds: float
    eval_last_estimated: float
    eval_recorded: bool  # metrics.json had eval_seconds
    wall_seconds: float  # execute_run, from its start to metrics.json's content (before the folder is written)
    resumed: bool

    @property
    def other_in_process(self) -> float:
        return self.wall_seconds - self.train_seconds - self.eval_seconds


def read_history(path: Path) -> list[dict]:
    import pandas as pd

    return pd.read_parquet(path, columns=["step", "split", "train_seconds", "wall_seconds"]).to_dict("records")


def run_timing(folder: Path) -> RunTiming:
    metrics = json.loads((folder / "metrics.json").read_text())
    eval_recorded = metrics.get("eval_seconds") is not None
    last = 0.0
    if eval_recorded:
        eval_s = float(metrics["eval_seconds"])
    else:
        n_val = n_test = None
        log = folder / "train.log"
        if log.exists() and (m := _SPLITS.search(log.read_text(errors="replace"))):
            n_val, n_test = int(m.group(2)), int(m.group(3))
        history = read_history(folder / "history.parquet") if (folder / "history.parquet").exists() else []
        eval_s, last, _ = derive_eval_seconds(history, n_val, n_test)
    return RunTiming(
        run_dir=str(folder), threads=int(metrics.get("threads") or 1), status=metrics.get("status"),
        train_seconds=float(metrics["train_seconds"]), eval_seconds=eval_s, eval_last_estimated=last,
        eval_recorded=eval_recorded, wall_seconds=float(metrics["wall_seconds"]),
        resumed=metrics.get("resumed_from_step") is not None,
    )


# --------------------------------------------------------------------------- the split

@dataclass
class Split:
    cores: int
    wall: float
    wall_source: str
    slot: float
    optimizer: float
    evaluation: float
    other_in_process: float
    startup_in_jobs: float
    idle: float
    other_jobs: float
    other_jobs_by_rule: dict[str, float]
    train_jobs: int
    runs_timed: int
    runs_without_metrics: int
    train_jobs_unfinished: int
    failed_attempts: int
    jobs: int
    eval_recorded: int  # runs whose metrics.json had eval_seconds
    eval_last_estimated: float
    resumed: int
    statuses: dict[str, int]
    train_job_seconds: float
    peak_rss_kb: int | None = None
    cpu_percent: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def startup_scheduling(self) -> float:
        return self.startup_in_jobs + self.idle


def compute_split(log: SnakemakeLog, results: Path, *, cores: int, wall: float, wall_source: str,
                  timing=run_timing) -> Split:
    """Job-slot seconds per line (every line weighted by the job's threads: a 2-thread job holds 2 slots)."""
    results = Path(results)
    optimizer = evaluation = other_in = startup = other_jobs = train_job_s = last_est = 0.0
    by_rule: dict[str, float] = {}
    statuses: dict[str, int] = {}
    train_jobs = timed = missing = unfinished = failed = recorded = resumed = 0
    notes = []
    for job in log.jobs.values():
        failed += sum(1 for a in job.attempts if a[2] == "failed")
        slot_s = job.threads * job.seconds
        if job.rule != TRAIN_RULE:
            other_jobs += slot_s
            by_rule[job.rule] = by_rule.get(job.rule, 0.0) + slot_s
            continue
        train_jobs += 1
        train_job_s += slot_s
        rel = job.run_dir
        folder = results / "runs" / Path(*rel) if rel else None
        if not job.finished or folder is None or not (folder / "metrics.json").exists():
            unfinished += not job.finished
            missing += folder is None or not (folder / "metrics.json").exists()
            startup += slot_s  # no in-process record: all of it counts as outside execute_run
            continue
        t = timing(folder)
        timed += 1
        k = job.threads
        optimizer += k * t.train_seconds
        evaluation += k * t.eval_seconds
        other_in += k * t.other_in_process
        startup += k * (job.seconds - t.wall_seconds)
        last_est += k * t.eval_last_estimated
        recorded += t.eval_recorded
        resumed += t.resumed
        statuses[t.status or "?"] = statuses.get(t.status or "?", 0) + 1
    slot = cores * wall
    idle = slot - train_job_s - other_jobs
    if missing:
        notes.append(f"{missing} train job(s) without a metrics.json in {results}: their whole job time "
                     "is counted as start-up")
    if resumed:
        notes.append(f"{resumed} run(s) resumed from a checkpoint: history wall time spans both processes, "
                     "their evaluation/other split is approximate")
    if idle < 0:
        notes.append(f"jobs add up to {-idle:.1f} s more than cores x wall (1 s timestamps, or a wrong --wall/--cores)")
    return Split(
        cores=cores, wall=wall, wall_source=wall_source, slot=slot, optimizer=optimizer, evaluation=evaluation,
        other_in_process=other_in, startup_in_jobs=startup, idle=idle, other_jobs=other_jobs,
        other_jobs_by_rule=dict(sorted(by_rule.items(), key=lambda kv: -kv[1])), train_jobs=train_jobs,
        runs_timed=timed, runs_without_metrics=missing, train_jobs_unfinished=unfinished, failed_attempts=failed,
        jobs=len(log.jobs), eval_recorded=recorded, eval_last_estimated=last_est, resumed=resumed,
        statuses=statuses, train_job_seconds=train_job_s, peak_rss_kb=log.peak_rss_kb,
        cpu_percent=log.cpu_percent, notes=notes,
    )


def choose_wall(log: SnakemakeLog, given: float | None, measured: float | None = None) -> tuple[float, str]:
    """The run's wall time and where it came from, outermost measurement first."""
    if given is not None:
        return given, "--wall"
    if measured is not None:
        return measured, "measured around the snakemake command"
    if log.time_elapsed is not None:
        return log.time_elapsed, "/usr/bin/time in the log"
    if log.snakemake_elapsed is not None:
        return log.snakemake_elapsed, "Snakemake's 'Elapsed time' in the log"
    if log.first and log.last:
        return (log.last - log.first).total_seconds(), "first to last job timestamp in the log"
    raise SystemExit("no wall time in the log: give --wall SECONDS")


# --------------------------------------------------------------------------- the table

def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def format_split(s: Split, title: str) -> str:
    def pct(x: float) -> str:
        return f"{100 * x / s.slot:6.1f}%" if s.slot > 0 else "     -"

    def mmss(x: float) -> str:
        return f"{int(x // 60)}:{x % 60:04.1f}"

    derived = "recorded" if s.eval_recorded == s.runs_timed and s.runs_timed else "derived*"
    rows = [
        ("optimizer steps (train_seconds)", s.optimizer, f">= {TARGET_OPT_SHARE:.0%}  "
         f"{_verdict(s.slot > 0 and s.optimizer / s.slot >= TARGET_OPT_SHARE)}"),
        (f"evaluation ({derived})", s.evaluation, ""),
        ("other in-process (execute_run)", s.other_in_process, ""),
        ("start-up and scheduling", s.startup_scheduling, f"<= {TARGET_STARTUP_SHARE:.0%}  "
         f"{_verdict(s.slot > 0 and s.startup_scheduling / s.slot <= TARGET_STARTUP_SHARE)}"),
        ("  in train jobs (outside execute_run)", s.startup_in_jobs, ""),
        ("  idle slots (no job running)", s.idle, ""),
        (f"other jobs ({s.jobs - s.train_jobs} non-train)", s.other_jobs, ""),
    ]
    statuses = ", ".join(f"{n} {k}" for k, n in sorted(s.statuses.items()))
    lines = [
        title,
        f"wall {mmss(s.wall)} ({s.wall:.1f} s, {s.wall_source})   target <= {TARGET_WALL_S / 60:.0f} min on 2 cores: "
        f"{_verdict(s.wall <= TARGET_WALL_S)}" + ("" if s.cores == 2 else f" (this run had {s.cores} cores)"),
        f"job-slot time {s.cores} cores x {s.wall:.1f} s = {s.slot:.1f} s; {s.jobs} jobs, "
        f"{s.train_jobs} train jobs, {s.runs_timed} runs timed ({statuses})",
    ]
    if s.peak_rss_kb:
        lines.append(f"peak RSS {s.peak_rss_kb / 1024:.0f} MiB (largest single process)")
    if s.cpu_percent is not None:
        lines.append(f"CPU used by the workflow {s.cpu_percent:.0f}% of one core, of {100 * s.cores}% for {s.cores} cores")
    lines += ["", f"{'line':<40} {'slot s':>9} {'% slots':>8}  target"]
    lines += [f"{name:<40} {sec:9.1f} {pct(sec):>8}  {target}".rstrip() for name, sec, target in rows]
    lines.append(f"{'total':<40} {s.slot:9.1f} {pct(s.slot):>8}")
    if s.runs_timed:
        per = s.train_job_seconds / s.train_jobs
        lines += ["", f"per train job: {per:.1f} s in the log, of which optimizer {s.optimizer / s.runs_timed:.1f} s, "
                      f"evaluation {s.evaluation / s.runs_timed:.1f} s, other in-process "
                      f"{s.other_in_process / s.runs_timed:.1f} s, outside execute_run "
                      f"{s.startup_in_jobs / s.train_jobs:.1f} s (slot-seconds)"]
    if s.other_jobs_by_rule:
        lines.append("other jobs by rule: " + ", ".join(f"{r} {x:.1f} s" for r, x in s.other_jobs_by_rule.items()))
    if derived != "recorded":
        lines.append(f"* evaluation is derived, not timed: bnlab records no eval timer. From history.parquet: the "
                     f"growth of (wall - train_seconds) between evaluations, plus the last evaluation estimated from "
                     f"the others' seconds per sample ({s.eval_last_estimated:.1f} s of the total).")
    lines.append("Job times come from the log's whole-second timestamps (+-1 s per job); all lines are slot-seconds "
                 "(a job's seconds x its threads).")
    lines += [f"note: {n}" for n in s.notes]
    return "\n".join(lines)


# --------------------------------------------------------------------------- running the workflow

def _snakemake() -> str:
    local = Path(sys.executable).parent / "snakemake"
    found = str(local) if local.exists() else shutil.which("snakemake")
    if not found:
        raise SystemExit("snakemake not found next to this Python or on PATH")
    return found


def run_workflow(configfile: str, cores: int, results: Path, log_path: Path, extra: list[str]) -> tuple[int, float, int]:
    """Run snakemake into results, its output into log_path; (exit status, wall seconds, children's peak RSS kB)."""
    cmd = [_snakemake(), "--cores", str(cores), "--configfile", configfile, "--config", f"results={results}", *extra]
    timer = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    if timer:
        cmd = [timer, "-v", *cmd]  # its report lands at the end of the log (peak RSS, CPU %)
    print("running:", " ".join(cmd), f"\n  in {REPO}\n  log {log_path}", flush=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        try:
            for line in proc.stdout:
                log.write(line)
                if _PROGRESS.match(line) or line.startswith(("Error", "Exiting")):
                    print(f"  [{time.perf_counter() - t0:7.1f} s] {line.rstrip()}", flush=True)
            rc = proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
            proc.wait()
            raise
    wall = time.perf_counter() - t0
    return rc, wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


def _is_empty(folder: Path) -> bool:
    return not folder.exists() or (folder.is_dir() and not any(folder.iterdir()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Extra snakemake arguments go after '--'.")
    ap.add_argument("--configfile", default="config.yaml", help="config to run (default config.yaml)")
    ap.add_argument("--cores", type=int, default=None, help="cores (run: default 2; --from-log: the log's)")
    ap.add_argument("--results", help="results folder (run: must be empty; default a new folder in /tmp)")
    ap.add_argument("--reuse", action="store_true", help="run into a non-empty results folder (finished jobs are skipped)")
    ap.add_argument("--log", help="where to keep the Snakemake log (default <results>.snakemake.log)")
    ap.add_argument("--from-log", help="analyse this existing Snakemake log with --results; runs nothing")
    ap.add_argument("--wall", type=float, help="wall seconds of that run (default: from the log)")
    ap.add_argument("--json", help="also write the numbers to this JSON file (run: default <results>.bench.json)")
    ap.add_argument("snakemake_args", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    measured = rc = None
    rusage_kb = None
    if args.from_log:
        if not args.results:
            ap.error("--from-log needs --results DIR (the run's results folder)")
        log_path, results = Path(args.from_log), Path(args.results)
        if not results.is_dir():
            ap.error(f"--results {results} is not a folder")
    else:
        cores = args.cores or 2
        stem = Path(args.configfile).stem
        results = Path(args.results or Path(tempfile.gettempdir()) /
                       f"bnlab-bench-{stem}-{datetime.now():%Y%m%d-%H%M%S}").resolve()
        if not _is_empty(results) and not args.reuse:
            ap.error(f"{results} is not empty: the benchmark starts from an empty results folder "
                     "(remove it, choose another, or pass --reuse)")
        if not _is_empty(results):
            print(f"warning: {results} is not empty (--reuse): finished jobs are skipped, "
                  "so this is not a run from scratch", flush=True)
        log_path = Path(args.log).resolve() if args.log else results.with_name(results.name + ".snakemake.log")
        configfile = str(Path(args.configfile).resolve())
        load = os.getloadavg()
        rc, measured, rusage_kb = run_workflow(configfile, cores, results, log_path, args.snakemake_args)
        print(f"snakemake exit status {rc}; load average before {load[0]:.2f}, after {os.getloadavg()[0]:.2f}")
        if args.json is None:
            args.json = str(results.with_name(results.name + ".bench.json"))

    global TARGET_WALL_S
    TARGET_WALL_S = TARGET_WALLS.get(Path(str(args.configfile)).stem, TARGET_WALL_S)
    with open(log_path, errors="replace") as f:
        log = parse_log(f)
    if args.from_log:
        cores = args.cores or log.cores or 2
    wall, source = choose_wall(log, args.wall, measured)
    if log.peak_rss_kb is None and rusage_kb:
        log.peak_rss_kb = rusage_kb
    split = compute_split(log, results, cores=cores, wall=wall, wall_source=source)
    config = args.configfile if not args.from_log else (log.configfiles or "?")
    title = (f"bnlab workflow run: config {config}, {cores} cores, results {results}\n"
             f"log {log_path}" + ("" if args.from_log is None else " (analysed afterwards)"))
    print(format_split(split, title))
    if args.json:
        payload = {**asdict(split), "startup_scheduling": split.startup_scheduling, "log": str(log_path),
                   "results": str(results), "config": config, "snakemake_exit_status": rc,
                   "targets": {"wall_s": TARGET_WALL_S, "optimizer_share_min": TARGET_OPT_SHARE,
                               "startup_scheduling_share_max": TARGET_STARTUP_SHARE}}
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")
        print(f"numbers written to {args.json}")
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
