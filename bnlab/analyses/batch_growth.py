"""Growing batch against decaying lr (seed 003 p. 2.3; Smith et al. 2017).

Each run of a batch_growth study is one policy: the batch doubles at a fixed
lr, the lr halves at the same samples with the batch fixed, or any other
schedule (the seed's cyclical rate). The comparison is at equal samples
seen: training loss, updates taken, and the final model's test accuracy and
loss (its generalisation).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from bnlab.analyses.formats import fmt_loss, fmt_pct
from bnlab.analyses.registry import Analysis, figure, register, table
from bnlab.analyses.registry import fragment as make_fragment
from bnlab.config import StudyPlan
from bnlab.params import RunSpec
from bnlab.runfolder import METRICS, STEPS, read_json

# Below this many accuracy points two policies count as generalising alike,
# unless the seeds' own spread is larger (then twice that spread).
SAME_ACC_POINTS = 1.0


def policy_kind(run: RunSpec) -> str:
    if run.grows:
        return "growth" if run.batch_growth_via == "batch" else "decay"
    return "other"


def step_table(study: StudyPlan, run_root: str | Path) -> pd.DataFrame:
    """Every step of every run: policy, seed, step, epoch, samples, batch_size, micro_batches, lr, loss."""
    frames = []
    for run in study.runs:
        steps = pd.read_parquet(Path(run_root) / run.relative_dir() / STEPS)
        frames.append(steps.assign(policy=run.lr_batch_policy(), kind=policy_kind(run), seed=run.seed))
    return pd.concat(frames, ignore_index=True)


def loss_by_epoch(steps: pd.DataFrame, bins_per_epoch: int = 4) -> pd.DataFrame:
    """Sample-weighted mean training loss per bin of epochs, per policy and seed.

    Growing-batch runs take few large steps late and many small ones early;
    binning by data seen (not by step) puts all policies on one axis.
    """
    s = steps.assign(bin=np.ceil(steps.epoch * bins_per_epoch) / bins_per_epoch,
                     weighted=steps.loss * steps.batch_size)
    g = s.groupby(["policy", "seed", "bin"], sort=True)
    out = (g.weighted.sum() / g.batch_size.sum()).rename("loss").reset_index().rename(columns={"bin": "epoch"})
    return out


def policy_table(study: StudyPlan, run_root: str | Path) -> pd.DataFrame:
    """One row per run: policy, updates, batches, lr used, final training and test numbers."""
    rows = []
    for run in study.runs:
        folder = Path(run_root) / run.relative_dir()
        m, steps = read_json(folder / METRICS), pd.read_parquet(folder / STEPS)
        lr = steps.lr.to_numpy() if len(steps) else np.array([math.nan])
        rows.append({
            "policy": run.lr_batch_policy(), "kind": policy_kind(run), "seed": run.seed, "status": m.get("status"),
            "updates": m.get("steps"), "samples": m.get("samples"), "epochs": m.get("epochs"),
            "batch_first": m.get("batch_size"), "batch_last": m.get("final_batch_size"),
            "max_micro_batches": m.get("max_micro_batches", 1), "micro_batch_cap": m.get("micro_batch_cap"),
            "lr_first": float(lr[0]), "lr_last": float(lr[-1]), "lr_min": float(np.min(lr)), "lr_max": float(np.max(lr)),
            "picked": ", ".join(f"{k} from {v['study']} ({v['curve']})" for k, v in (m.get("picked") or {}).items()),
            "final_train_loss": m.get("final_train_loss"), "final_train_acc": m.get("final_train_acc"),
            "final_test_loss": m.get("final_test_loss"), "final_test_acc": m.get("final_test_acc"),
            "train_seconds": m.get("train_seconds"),
        })
    return pd.DataFrame(rows)


def lr_text(first: float, last: float, low: float, high: float) -> str:
    """A policy's learning rate in a table cell: constant, falling, or moving within a range."""
    if high <= low * 1.0001:
        return f"{first:.2g}"
    if math.isclose(first, high) and math.isclose(last, low):
        return f"{first:.2g} → {last:.2g}"
    return f"{low:.2g} … {high:.2g}, cycling"


def _mean_sd(values: pd.Series) -> tuple[float, float]:
    v = pd.to_numeric(values, errors="coerce").dropna()
    if v.empty:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per policy (over seeds; diverged runs counted, not averaged): means and seed spread."""
    rows = []
    for policy, g in table.groupby("policy", sort=False):
        ok = g[g.status == "ok"]
        acc, acc_sd = _mean_sd(ok.final_test_acc)
        rows.append({
            "policy": policy, "kind": g.kind.iloc[0], "runs": len(g), "diverged": int((g.status != "ok").sum()),
            "updates": float(g.updates.mean()), "samples": float(g.samples.mean()),
            "batch_first": int(g.batch_first.iloc[0]), "batch_last": int(g.batch_last.max()),
            "max_micro_batches": int(g.max_micro_batches.max()),
            "lr_first": float(g.lr_first.iloc[0]), "lr_last": float(g.lr_last.iloc[0]),
            "lr_low": float(g.lr_min.min()), "lr_high": float(g.lr_max.max()),
            "final_train_loss": _mean_sd(ok.final_train_loss)[0], "final_test_loss": _mean_sd(ok.final_test_loss)[0],
            "test_acc": acc, "test_acc_sd": acc_sd, "train_seconds": float(g.train_seconds.mean()),
            "picked": g.picked.iloc[0],
        })
    return pd.DataFrame(rows)


def tolerance_points(summ: pd.DataFrame) -> tuple[float, str]:
    """Accuracy difference (points) below which two policies count as alike, and why."""
    sds = summ.test_acc_sd.dropna()
    if len(sds):
        spread = 2 * 100 * float(np.sqrt((sds ** 2).mean()))
        if spread > SAME_ACC_POINTS:
            return spread, f"twice the seeds' spread ({spread:.2f} points)"
    return SAME_ACC_POINTS, f"{SAME_ACC_POINTS:g} accuracy point"


def findings(summ: pd.DataFrame, n_seeds: int) -> list[str]:
    """Sentences for the report, each computed from the summary; the generalisation answer last."""
    out = []
    growth, decay = summ[summ.kind == "growth"], summ[summ.kind == "decay"]
    others = summ[summ.kind == "other"]
    for _, r in summ[summ.diverged > 0].iterrows():
        out.append(f"{r.policy}: diverged in {r.diverged} of {r.runs} runs (not averaged).")
    if growth.empty:
        return out + ["No run grows its batch, so there is nothing to compare."]
    g = growth.iloc[0]
    if not decay.empty:
        d = decay.iloc[0]
        out.append(f"Over the same epochs ({g.samples:,.0f} samples against {d.samples:,.0f}: each epoch's tail "
                   f"too short for a whole batch is dropped), growing the batch from {g.batch_first} to "
                   f"{g.batch_last} took {g.updates:,.0f} updates against {d.updates:,.0f} for the matching lr "
                   f"decay ({d.updates / g.updates:.1f}x fewer); final training loss {g.final_train_loss:.3f} "
                   f"against {d.final_train_loss:.3f}.")
    if g.max_micro_batches > 1:
        out.append(f"Batches above the memory cap were accumulated from up to {g.max_micro_batches} "
                   "micro-batches (with batch norm each micro-batch is normalised on its own: ghost batch norm).")
    if math.isnan(g.test_acc):
        return out + ["The growing-batch runs all diverged, so their generalisation cannot be compared."]
    tol, why = tolerance_points(summ)
    seeds = f"{n_seeds} seed{'s' if n_seeds > 1 else ''}"
    verdicts = []
    for _, other in pd.concat([decay, others]).iterrows():
        if math.isnan(other.test_acc):
            verdicts.append(f"{other.policy} diverged, no comparison")
            continue
        diff = 100 * (g.test_acc - other.test_acc)
        word = "similar to" if abs(diff) <= tol else ("better than" if diff > 0 else "worse than")
        verdicts.append(f"{word} {other.policy} ({100 * g.test_acc:.2f}% against {100 * other.test_acc:.2f}% test "
                        f"accuracy, {diff:+.2f} points; test loss {g.final_test_loss:.3f} against "
                        f"{other.final_test_loss:.3f})")
    if verdicts:
        out.append(f"Generalisation: the growing-batch model is " + "; and ".join(verdicts)
                   + f". Differences within {why} count as similar ({seeds}).")
    return out


# ------------------------------------------------------- the registry entry
FIGURE_PNG, RUNS_CSV, TABLE_CSV = "batch_growth.png", "batch_growth_runs.csv", "batch_growth.csv"


def compute(ctx) -> None:
    from bnlab.figures.batch_growth import plot_batch_growth  # matplotlib: loaded only when drawing

    study = ctx.study
    runs = policy_table(study, ctx.run_root)
    runs.to_csv(ctx.out / RUNS_CSV, index=False)
    summ = summary(runs)
    summ.to_csv(ctx.out / TABLE_CSV, index=False)
    steps = step_table(study, ctx.run_root)
    plot_batch_growth(steps, loss_by_epoch(steps), runs, ctx.out / FIGURE_PNG, title=study.title,
                      dataset_note=ctx.where)
    print(summ.to_string())


def fragment(ctx) -> dict:
    summ = pd.read_csv(ctx.out / TABLE_CSV, keep_default_na=False, na_values=[""])
    summ["picked"] = summ.picked.fillna("")
    picked = "; ".join(f"{r.policy}: {r.picked}" for r in summ.itertuples() if r.picked)
    rows = [[r.policy + (f" (diverged {r.diverged}/{r.runs})" if r.diverged else ""),
             f"{r.updates:,.0f}", f"{r.batch_first}→{r.batch_last}", str(r.max_micro_batches),
             lr_text(r.lr_first, r.lr_last, r.lr_low, r.lr_high), fmt_loss(r.final_train_loss),
             fmt_loss(r.final_test_loss),
             fmt_pct(r.test_acc) + (f" ± {100 * r.test_acc_sd:.1f}" if r.test_acc_sd == r.test_acc_sd else ""),
             f"{r.train_seconds:.0f}"] for r in summ.itertuples()]
    return make_fragment(
        figures=[figure(FIGURE_PNG, f"Growing batch against decaying lr {ctx.where}: training loss by data seen and "
                                    "by optimizer update, and each policy's batch size and learning rate. The lr "
                                    "decay divides lr by the factor the batch grows by, at the same number of "
                                    "samples (Smith et al. 2017).")],
        tables=[table("Policies at equal data seen (means over seeds; test accuracy ± seed s.d.)."
                      + (f" Rates picked by the range test: {picked}." if picked else ""),
                      ["policy", "updates", "batch", "micro-batches", "lr", "train loss", "test loss",
                       "test acc %", "train s"], rows, [bool(r.diverged) for r in summ.itertuples()])],
        findings=findings(summ, len(ctx.study.seeds)), references=["Smith et al. 2017"])


register(Analysis(
    name="batch_growth",
    description="growing batch against the matching lr decay and other schedules at equal data seen: figure, "
                "policy table, generalisation answer (seed 003 p. 2.3; Smith et al. 2017)",
    compute=compute, fragment=fragment, reads=(METRICS, STEPS)))
