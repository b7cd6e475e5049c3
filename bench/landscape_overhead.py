"""What Santurkar probes add to a landscape run's training time, end to end.

Trains the default config's landscape cell (small CNN, 10,000 Fashion-MNIST
images, 2 epochs, Adam 1e-3, with and without BN) through bnlab's
execute_run, once with probes every k-th step and once without, alternating
A B A B, and reports the median training seconds (evaluation excluded) and
their ratio. Same code path as a Snakemake train job.

    .venv/bin/python bench/landscape_overhead.py [--repeats 3] [--every 20] [--etas 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bnlab.config import load_schema, resolve_run  # noqa: E402
from bnlab.data import prepare_dataset  # noqa: E402
from bnlab.train import execute_run  # noqa: E402


def spec(bn: str, every: int, etas: int):
    params = {k: v["default"] for k, v in load_schema()["$defs"]["run"]["properties"].items()}
    params.update(dataset="fashion_mnist", model="cnn", widths=[16, 32, 64, 128, 64], train_subset=10000,
                  epochs=2, evals_per_epoch=2, lr=1e-3, bn=bn, probe_every=every, probe_etas=etas)
    return resolve_run(params)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--every", type=int, default=20, help="probe every k-th step (default: the default config's)")
    ap.add_argument("--etas", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1, help="torch threads, as a default-config train job")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "fashion_mnist.pt"
        prepare_dataset("fashion_mnist", data, val_size=5000, log=lambda s: None)
        print(f"load average at start: {os.getloadavg()}")
        for bn in ("none", "hidden"):
            times = {"plain": [], "probed": []}
            for i in range(args.repeats + 1):  # the first pair is a warm-up
                for name, every in (("plain", 0), ("probed", args.every)):
                    m = execute_run(spec(bn, every, args.etas), data, Path(tmp) / f"{bn}-{name}-{i}",
                                    threads=args.threads, log=lambda s: None)
                    if i:
                        times[name].append(m["train_seconds"])
            plain, probed = statistics.median(times["plain"]), statistics.median(times["probed"])
            print(f"bn={bn:6s} training seconds, median of {args.repeats}: without probes {plain:.2f}, "
                  f"with probes every {args.every} steps ({args.etas} step sizes) {probed:.2f}: "
                  f"+{100 * (probed / plain - 1):.0f}%")
        print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
