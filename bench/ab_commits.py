"""The same training runs under two revisions of bnlab, side by side.

Whole default-config runs (by default one run of each study that trains, the
first its plan lists that reads no other study's picks) are trained through `execute_run` under the working
tree and under an older revision checked out as a git worktree, alternating
A B B A ... so that a machine that slows down during the benchmark slows both
alike. Each run is a fresh process with 1 torch thread, as a Snakemake train
job; training seconds, evaluation seconds and the process's wall time come
from the run's own metrics.json. Prints, per run, the medians and the new/old
ratio of each, and the median ratio over all runs.

    .venv/bin/python bench/ab_commits.py --old 50033d1 [--repeats 3] [--studies bn_cifar,best_net]

The old revision must read the same run-folder names (RunSpec.from_relative_dir)
and have execute_run(spec, data_path, out_dir, log=..., threads=...).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# What each child process runs: one run folder trained from its relative name, metrics to stdout.
CHILD = """
import json, sys
from bnlab.params import RunSpec
from bnlab.train import execute_run
spec = RunSpec.from_relative_dir(sys.argv[1])
m = execute_run(spec, sys.argv[2], sys.argv[3], log=lambda _: None, threads=1)
print(json.dumps({k: m.get(k) for k in ("train_seconds", "eval_seconds", "wall_seconds", "steps", "status",
                                        "final_test_acc")}))
"""


def pick_runs(studies: list[str] | None) -> list[tuple[str, str]]:
    """(study, run folder relative name): the first run of each selected study of config.yaml."""
    import yaml

    from bnlab.workflow import load_plan

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    plan = load_plan(config)
    picked = []
    for name, study in plan.studies.items():
        # a run that reads another study's picks (pick-, best-, draw<i>-) would need that study run first
        alone = [r.relative_dir() for r in study.runs
                 if not any(t in r.relative_dir() for t in ("~pick-", "~best-", "~draw"))]
        if alone and (studies is None or name in studies):
            picked.append((name, alone[0]))
    return picked


def train(tree: Path, rel: str, data: Path, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", CHILD, rel, str(data), str(out)], cwd=tree, env=env,
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{tree}: {rel}: {res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", required=True, help="the older revision (a commit, a tag, a branch)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--studies", default="", help="comma-separated studies (default: every study that trains)")
    ap.add_argument("--out", default=str(REPO / "bench" / "out" / "ab_commits.json"))
    args = ap.parse_args()
    from bnlab.data import prepare_dataset

    runs = pick_runs([s for s in args.studies.split(",") if s] or None)
    with tempfile.TemporaryDirectory() as tmp:
        old_tree = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(old_tree), args.old],
                       check=True, capture_output=True)
        try:
            from bnlab.params import RunSpec

            dataset = {rel: RunSpec.from_relative_dir(rel).dataset for _, rel in runs}
            datasets = {}
            for name in dataset.values():
                if name not in datasets:
                    datasets[name] = Path(tmp) / f"{name}.pt"
                    prepare_dataset(name, datasets[name], val_size=5000, split_seed=0, log=lambda _: None)
            print(f"{len(runs)} runs, {args.repeats} repeats each under {args.old} (old) and the working tree "
                  f"(new); load average at start {os.getloadavg()[0]:.2f}", flush=True)
            rows = []
            for study, rel in runs:
                data = datasets[dataset[rel]]
                times = {"old": [], "new": []}
                for r in range(args.repeats):
                    order = (("old", old_tree), ("new", REPO)) if r % 2 == 0 else (("new", REPO), ("old", old_tree))
                    for label, tree in order:
                        m = train(tree, rel, data, Path(tmp) / f"{label}-{study}-{r}")
                        times[label].append(m)
                row = {"study": study, "run": rel, "repeats": times}
                for key in ("train_seconds", "eval_seconds", "wall_seconds"):
                    old = statistics.median(m[key] for m in times["old"])
                    new = statistics.median(m[key] for m in times["new"])
                    row[key] = {"old": old, "new": new, "ratio": new / old}
                row["same_result"] = all(a["final_test_acc"] == b["final_test_acc"] and a["steps"] == b["steps"]
                                         for a, b in zip(times["old"], times["new"]))
                rows.append(row)
                t = row["train_seconds"]
                print(f"{study:14s} train {t['old']:7.2f} -> {t['new']:7.2f} s ({t['ratio']:.3f})   "
                      f"eval ({row['eval_seconds']['ratio']:.3f})   wall ({row['wall_seconds']['ratio']:.3f})   "
                      f"same result: {row['same_result']}", flush=True)
            summary = {k: statistics.median(r[k]["ratio"] for r in rows)
                       for k in ("train_seconds", "eval_seconds", "wall_seconds")}
            print("median new/old over runs: " + ", ".join(f"{k} {v:.3f}" for k, v in summary.items()))
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps({"old": args.old, "rows": rows, "median_ratio": summary}, indent=1))
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old_tree)],
                           check=False, capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
