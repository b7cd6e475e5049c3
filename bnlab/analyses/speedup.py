"""Training speedup from batch norm, as Ioffe & Szegedy (2015) measured it.

tau = the baseline run's best validation accuracy; t_X(tau) = the first
evaluated optimizer step at which run X's validation accuracy >= tau. Both are
read from the validation curve, whose points all evaluate one fixed,
class-stratified subset of the validation split (run parameter eval_size,
bnlab.data.subsets): the same images for the baseline and the BN run, so tau
and the steps are measured with one yardstick; the whole split is evaluated
only at the end and does not enter the ratio.
speedup = t_base(tau) / t_BN(tau). Each BN variant is paired with the baseline
run of the same setting (every other axis equal) and the same seed, so the
two runs share their initial draw and data order. A run pair without a
meaningful ratio gets an outcome and no number.

The steps are read on the evaluation grid: a run crossed tau somewhere after
its previous evaluation, so each ratio lies between bounds (speedup_low,
speedup_high), infinite above when BN met tau by its first evaluation (the
grid's ceiling); the report states them. A second measure is not held to
the grid: per step, on the training loss (steps.parquet, averaged over a
quarter epoch), the baseline's step at its lowest loss over the first step the
BN run's loss is as low (loss_speedup). In time, each run's steps times its
network's seconds per step timed alone (rule step_times). Training seconds of each run
(wall_*) are kept in the CSV but not reported as a speedup: the jobs shared
the machine, so their clocks measure their neighbours too.

Measures (stats["measures"], bnlab.analyses.evidence): per BN run with a
baseline partner, per seed, "speedup" (steps ratio t_base / t_BN), None where the outcome has no number;
params: the BN run's parameters but its seed; seed: the pair's. The values are
speedup_per_seed.csv's.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd

from bnlab.analyses.collect import read_runs, setting_name
from bnlab.analyses.evidence import CONFIDENCE, INTERVAL_METHOD, MIN_SEEDS, measure, t_interval
from bnlab.analyses.measures import name
from bnlab.analyses.registry import Analysis, register, table
from bnlab.analyses.registry import fragment as make_fragment
from bnlab.params import NOT_APPLICABLE
from bnlab.runfolder import STEPS
from bnlab.step_times import STEP_TIMES_TABLE, read_step_times

BN_AXIS = "bn"
# Accuracies are fractions of a fixed validation subset (granularity >= 1e-6 for any
# realistic size), so this only absorbs float noise, never a real difference.
REACH_TOLERANCE = 1e-9

REACHED = "reached"
NOT_REACHED = "not reached"
BN_DIVERGED = "BN diverged"
BASE_DIVERGED = "baseline diverged"
BASE_NEVER_IMPROVED = "baseline never improved"
REACHED_AT_START = "reached at step 0"
NO_BASELINE = "no baseline"
NO_BN_RUN = "no BN run"
# every outcome, in the order counts and texts list them; the paired table holds one
# count column per outcome (flat numbers survive CSV/parquet, a dict would not)
OUTCOMES = (REACHED, NOT_REACHED, BN_DIVERGED, BASE_DIVERGED, BASE_NEVER_IMPROVED, REACHED_AT_START,
            NO_BASELINE, NO_BN_RUN)
COUNT_COLUMNS = {o: "n_" + o.replace(" ", "_").replace("BN", "bn") for o in OUTCOMES}

PER_SEED_COLUMNS = ["setting", "bn", "baseline", "seed", "tau", "t_base", "t_bn", "speedup", "speedup_low",
                    "speedup_high", "s_step_base", "s_step_bn", "s_step_base_min", "s_step_base_max",
                    "s_step_bn_min", "s_step_bn_max", "time_speedup", "loss_window", "loss_tau",
                    "t_base_loss", "t_bn_loss", "loss_speedup", "wall_base", "wall_bn",
                    "wall_speedup", "outcome"]
PAIRED_COLUMNS = (["setting", "bn", "baseline", "n_seeds", "n_reached"]
                  + [COUNT_COLUMNS[o] for o in OUTCOMES[1:]]  # seeds per no-number outcome
                  + ["tau_mean", "speedup", "ci_low", "ci_high", "grid_low", "grid_high", "n_ceiling",
                     "step_cost", "step_cost_low", "step_cost_high", "time_speedup", "time_ci_low", "time_ci_high",
                     "loss_window", "n_loss", "loss_speedup", "loss_ci_low", "loss_ci_high",
                     "wall_speedup", "wall_ci_low", "wall_ci_high", "ci", "text"])


# ---------------------------------------------------------------- per seed

def setting_text(values: dict[str, str]) -> str:
    """Legend text of the non-BN axes, as the study labels write it ("all runs" if none).

    Values "na" (parameter does not apply) are left out, like in labels.
    """
    return ", ".join(f"{a}={v}" for a, v in values.items() if v != NOT_APPLICABLE) or "all runs"


def val_curve(curves: pd.DataFrame, label: str, seed: int, diverged_step: float | None) -> pd.DataFrame:
    """One run's validation evaluations (step, acc, train_seconds), sorted by step.

    A diverged run's evaluations from its divergence step on are dropped: that
    evaluation is off the common cadence and of a model with non-finite weights.
    """
    c = curves[(curves["label"] == label) & (curves["seed"] == seed) & (curves["split"] == "val")]
    c = c[["step", "acc", "train_seconds"]].sort_values("step")
    if diverged_step is not None and not _missing(diverged_step):
        c = c[c["step"] < diverged_step]
    return c.reset_index(drop=True)


def best_accuracy(curve: pd.DataFrame) -> float:
    """Max of the finite validation accuracies (NaN if none)."""
    acc = pd.to_numeric(curve["acc"], errors="coerce")
    acc = acc[np.isfinite(acc)]
    return float(acc.max()) if len(acc) else math.nan


def first_reach(curve: pd.DataFrame, tau: float) -> tuple[float, float]:
    """(step, train_seconds) of the first evaluation with acc >= tau; (NaN, NaN) if none."""
    hit = curve[pd.to_numeric(curve["acc"], errors="coerce") >= tau - REACH_TOLERANCE]
    if hit.empty:
        return math.nan, math.nan
    row = hit.iloc[0]  # curve is sorted by step
    return float(row["step"]), float(row["train_seconds"])


def evaluation_before(curve: pd.DataFrame, step: float) -> float:
    """The step of the evaluation before `step` (0 when `step` is the first): a run evaluated at both did not
    meet the target at the earlier one, so it crossed somewhere after it, at or before `step`."""
    earlier = curve.loc[curve["step"] < step, "step"]
    return float(earlier.max()) if len(earlier) else 0.0


def smoothed_loss(steps: pd.DataFrame, window: int) -> pd.Series:
    """The per-step training loss (steps.parquet), averaged over `window` steps centred on each step, by step;
    a non-finite loss (divergence) ends the series."""
    loss = pd.to_numeric(steps.sort_values("step").set_index("step")["loss"], errors="coerce")
    bad = ~np.isfinite(loss.to_numpy(dtype=float))
    if bad.any():
        loss = loss.iloc[:int(np.argmax(bad))]
    return loss.rolling(window, center=True, min_periods=1).mean()


def loss_window(steps_per_epoch: float) -> int:
    """Steps the per-step training loss is averaged over: a quarter epoch (at least 5), enough that one lucky
    batch does not set the target."""
    return max(5, int(steps_per_epoch) // 4) if steps_per_epoch == steps_per_epoch else 5


def loss_speedup(base: pd.DataFrame, bn: pd.DataFrame, window: int) -> dict:
    """Steps to the baseline's lowest (averaged) training loss, per step: the baseline's own step at it over
    the first step the BN run's averaged loss is at or below it. Finer than the evaluation grid (every step
    counts), and on the training loss, not the validation accuracy."""
    out = {"loss_window": float(window), "loss_tau": math.nan, "t_base_loss": math.nan, "t_bn_loss": math.nan,
           "loss_speedup": math.nan}
    a, b = smoothed_loss(base, window), smoothed_loss(bn, window)
    if a.empty or b.empty:
        return out
    out["loss_tau"] = tau = float(a.min())
    out["t_base_loss"] = float(a.idxmin())
    hit = b[b <= tau + REACH_TOLERANCE]
    if len(hit):
        out["t_bn_loss"] = float(hit.index[0])
        out["loss_speedup"] = out["t_base_loss"] / out["t_bn_loss"]
    return out


def check_same_cadence(base: pd.DataFrame, bn: pd.DataFrame, where: str) -> None:
    """Raise if two runs were evaluated at different steps over their common range.

    Comparing first-reach steps is only fair on one cadence; a diverged run may
    end earlier, so only the shared range is compared.
    """
    if base.empty or bn.empty:
        return
    end = min(base["step"].max(), bn["step"].max())
    a = set(base.loc[base["step"] <= end, "step"])
    b = set(bn.loc[bn["step"] <= end, "step"])
    if a != b:
        raise ValueError(f"{where}: baseline and BN run were evaluated at different steps "
                         f"({sorted(a ^ b)[:5]} ...); the speedup needs one cadence")


def _missing(x) -> bool:
    """None, NaN (any float type) or pd.NA: a cell without a number."""
    return x is None or (pd.api.types.is_scalar(x) and bool(pd.isna(x)))


def _ratio(num: float, den: float) -> float:
    """num / den, NaN when either is missing or den is not positive (no x/0)."""
    if _missing(num) or _missing(den) or not den > 0:
        return math.nan
    return num / den


def pair_speedup(base_run: pd.Series, bn_run: pd.Series, curves: pd.DataFrame, where: str = "",
                 step_times: dict[str, dict] | None = None, steps: dict[str, pd.DataFrame] | None = None) -> dict:
    """tau, first-reach steps and times, ratios and outcome for one (baseline, BN) pair; with step_times
    (bnlab.step_times.read_step_times: run_dir -> its network's seconds per step, timed alone) the steps are
    also turned into time."""
    out = {"tau": math.nan, "t_base": math.nan, "t_bn": math.nan, "speedup": math.nan,
           "speedup_low": math.nan, "speedup_high": math.nan, "time_speedup": math.nan,
           "wall_base": math.nan, "wall_bn": math.nan, "wall_speedup": math.nan}
    for who, run in (("base", base_run), ("bn", bn_run)):  # its network's median and range over the rounds
        timed = (step_times or {}).get(run.get("run_dir"), {})
        for suffix, column in (("", "s_per_step"), ("_min", "s_per_step_min"), ("_max", "s_per_step_max")):
            out[f"s_step_{who}{suffix}"] = float(timed.get(column, math.nan))
    if base_run["status"] == "diverged":
        # its best accuracy before blowing up is not a fair target: no tau, no number
        return {**out, "outcome": BASE_DIVERGED}
    if steps is not None and base_run.get("run_dir") in steps and bn_run.get("run_dir") in steps:
        out.update(loss_speedup(steps[base_run["run_dir"]], steps[bn_run["run_dir"]],
                                loss_window(float(base_run.get("steps_per_epoch", math.nan)))))
    base = val_curve(curves, base_run["label"], base_run["seed"], None)
    bn_div = bn_run["diverged_step"] if bn_run["status"] == "diverged" else None
    bn = val_curve(curves, bn_run["label"], bn_run["seed"], bn_div)
    check_same_cadence(base, bn, where)
    tau = best_accuracy(base)
    out["tau"] = tau
    if math.isnan(tau):
        return {**out, "outcome": BASE_NEVER_IMPROVED}  # no finite evaluation: nothing to reach
    out["t_base"], out["wall_base"] = first_reach(base, tau)
    out["t_bn"], out["wall_bn"] = first_reach(bn, tau)
    if out["t_base"] == 0:
        # the baseline's best is its initial accuracy: steps to reach it are 0 (0/0 or 0/x)
        return {**out, "outcome": BASE_NEVER_IMPROVED}
    if math.isnan(out["t_bn"]):
        return {**out, "outcome": BN_DIVERGED if bn_run["status"] == "diverged" else NOT_REACHED}
    if out["t_bn"] == 0:
        # the BN model already met tau before training: the ratio would be x/0
        return {**out, "outcome": REACHED_AT_START}
    out["speedup"] = _ratio(out["t_base"], out["t_bn"])
    out["time_speedup"] = _ratio(out["t_base"] * out["s_step_base"], out["t_bn"] * out["s_step_bn"])
    out["wall_speedup"] = _ratio(out["wall_base"], out["wall_bn"])
    # The steps are read on the evaluation grid: each run crossed tau after its previous evaluation, so the
    # true ratio lies between these bounds; with BN's crossing before its first evaluation after step 0 the
    # grid cannot say how much faster it was (no upper bound: the grid's ceiling)
    base_before, bn_before = evaluation_before(base, out["t_base"]), evaluation_before(bn, out["t_bn"])
    out["speedup_low"] = base_before / out["t_bn"]
    out["speedup_high"] = out["t_base"] / bn_before if bn_before > 0 else math.inf
    return {**out, "outcome": REACHED}


def speedup_per_seed(runs: pd.DataFrame, curves: pd.DataFrame, axes: list[str], *,
                     baseline: str = "none", step_times: dict[str, dict] | None = None,
                     steps: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """One row per (setting, BN variant, seed): the speedup of BN over the baseline.

    A BN variant is every `bn` value other than `baseline` in the study. Each
    baseline run is paired with every BN variant of its setting and seed, and
    each BN run without a baseline partner gets a "no baseline" row, so a
    missing partner shows rather than silently shrinking the table. Columns:
    PER_SEED_COLUMNS plus the other axes' values.
    """
    if BN_AXIS not in axes:
        raise ValueError(f"speedup needs a study with a '{BN_AXIS}' axis; axes are {axes}")
    other = [a for a in axes if a != BN_AXIS]
    runs = runs.copy()
    runs["_key"] = [tuple(r) for r in runs[other].itertuples(index=False)] if other else [()] * len(runs)
    dup = runs.duplicated(["_key", BN_AXIS, "seed"])
    if dup.any():
        raise ValueError(f"runs repeat a (setting, bn, seed): {runs.loc[dup, 'label'].tolist()}")
    variants = [b for b in pd.unique(runs[BN_AXIS]) if b != baseline]
    index = {(r["_key"], r[BN_AXIS], r["seed"]): r for _, r in runs.iterrows()}

    rows = []
    for key in pd.unique(runs["_key"]):  # settings in study order
        values = dict(zip(other, key))
        in_setting = runs[runs["_key"] == key]
        base_labels = in_setting.loc[in_setting[BN_AXIS] == baseline, "label"]
        # 'CNN, lr=0.5' where the study names its cells, else the axes as key=value
        setting = setting_name(setting_text(values), base_labels.iloc[0] if len(base_labels) else None)
        for bn in variants:
            for seed in sorted(in_setting["seed"].unique()):
                base_run, bn_run = index.get((key, baseline, seed)), index.get((key, bn, seed))
                if base_run is None and bn_run is None:
                    continue  # neither run exists: nothing to show for this seed
                head = {"setting": setting, "bn": bn, "baseline": baseline, "seed": int(seed)}
                if base_run is None:
                    body = {"outcome": NO_BASELINE}
                elif bn_run is None:
                    body = {"outcome": NO_BN_RUN}
                else:
                    body = pair_speedup(base_run, bn_run, curves, f"{setting}, bn={bn}, seed={seed}", step_times,
                                        steps)
                rows.append({**head, **values, **body})
    table = pd.DataFrame(rows, columns=PER_SEED_COLUMNS + other)
    for column in PER_SEED_COLUMNS[4:-1]:
        table[column] = table[column].astype(float)  # missing partners leave NaN
    return table


# ---------------------------------------------------------------- over seeds

def geometric_mean(values: np.ndarray) -> float:
    """exp(mean(log x)): the mean of ratios that treats 2x and 0.5x symmetrically."""
    return float(np.exp(np.mean(np.log(values))))


def geomean_interval(values: np.ndarray, ci: float = CONFIDENCE) -> tuple[float | None, float | None]:
    """The paired t-interval of the mean log ratio (evidence.t_interval), back on the ratio scale: the
    interval of the geometric mean; (None, None) below evidence.MIN_SEEDS values."""
    interval = t_interval(np.log(np.asarray(values, dtype=float)), ci)
    if interval is None:
        return None, None
    return float(np.exp(interval[0])), float(np.exp(interval[1]))


def _x(value: float) -> str:
    return f"{value:.2f}x"


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def outcome_counts(row: pd.Series) -> dict[str, int]:
    """{outcome: seeds} of a paired row, non-zero ones only, in OUTCOMES order."""
    counts = {REACHED: int(row["n_reached"]), **{o: int(row[COUNT_COLUMNS[o]]) for o in OUTCOMES[1:]}}
    return {o: c for o, c in counts.items() if c}


def paired_text(n_seeds: int, outcomes: dict[str, int], speedup: float | None,
                ci_low: float | None, ci_high: float | None) -> str:
    """Ready-to-print table cell for one (setting, BN variant) over seeds."""
    n_reached = outcomes.get(REACHED, 0)
    others = "; ".join(f"{k} {o}" for o, k in outcomes.items() if o != REACHED)
    if n_reached == 0:
        if len(outcomes) == 1:
            (only, k), = outcomes.items()
            return f"{only} (0/{_seeds(n_seeds)})" if only == NOT_REACHED else f"{only} ({k}/{n_seeds})"
        return f"no speedup (0/{n_seeds} seeds reached; {others})"
    interval, tail = "", f", no interval from fewer than {MIN_SEEDS}"
    if ci_low is not None:
        # a zero-width interval (every seed the same ratio) is said, not printed as [x, x]
        interval, tail = ("", ", the same in each") if ci_low == ci_high else (f" [{ci_low:.2f}, {ci_high:.2f}]", "")
    if n_reached == n_seeds:
        return f"{_x(speedup)}{interval} ({n_reached}/{_seeds(n_seeds)}{tail})"
    return f"{_x(speedup)}{interval} ({n_reached}/{n_seeds} seeds reached{tail}; {others})"


def speedup_paired(per_seed: pd.DataFrame, *, ci: float = CONFIDENCE) -> pd.DataFrame:
    """One row per (setting, BN variant): geometric-mean speedup over seeds with its t-interval.

    Only seeds with outcome "reached" enter the estimate (the others have no
    number); `n_reached` of `n_seeds` and the text say how many did. The
    interval (evidence.t_interval on the log ratios) needs at least MIN_SEEDS reached seeds, else it is
    None and the text says "no interval". `tau_mean` is the mean target accuracy over seeds that had one.
    """
    rows = []
    for (setting, bn), group in per_seed.groupby(["setting", "bn"], sort=False):
        found = Counter(group["outcome"])
        unknown = set(found) - set(OUTCOMES)
        if unknown:
            raise ValueError(f"unknown outcomes {sorted(unknown)} for {setting}, bn={bn}")
        outcomes = {o: found[o] for o in OUTCOMES if found[o]}
        reached = group[group["outcome"] == REACHED]
        steps = reached["speedup"].to_numpy(dtype=float)
        wall = reached["wall_speedup"].to_numpy(dtype=float)
        wall = wall[np.isfinite(wall)]
        est = geometric_mean(steps) if len(steps) else None
        low, high = geomean_interval(steps, ci)
        # what the evaluation grid allows the mean to be: every seed at its lowest, every seed at its highest
        # (0 below where a baseline met the target by its first evaluation, no bound above where BN did)
        lows, highs = reached["speedup_low"].to_numpy(dtype=float), reached["speedup_high"].to_numpy(dtype=float)
        grid_low = (0.0 if (lows == 0).any() else geometric_mean(lows)) if len(steps) else None
        grid_high = (math.inf if np.isinf(highs).any() else geometric_mean(highs)) if len(steps) else None
        w_est = geometric_mean(wall) if len(wall) else None
        w_low, w_high = geomean_interval(wall, ci)
        # time: each seed's steps at its networks' seconds per step timed alone; BN's step cost over the
        # baseline's is the same network pair in every seed (the median, and the range the timing rounds allow)
        times = reached["time_speedup"].to_numpy(dtype=float)
        times = times[np.isfinite(times)]
        t_est = geometric_mean(times) if len(times) else None
        t_low, t_high = geomean_interval(times, ci)
        timed = group[np.isfinite(group["s_step_base"].astype(float)) & np.isfinite(group["s_step_bn"].astype(float))]
        cost = cost_low = cost_high = None
        if len(timed):
            cost = float((timed["s_step_bn"] / timed["s_step_base"]).median())
            cost_low = float((timed["s_step_bn_min"] / timed["s_step_base_max"]).min())
            cost_high = float((timed["s_step_bn_max"] / timed["s_step_base_min"]).max())
        # per step, on the training loss: every seed whose BN run reached the baseline's lowest averaged loss
        losses = group["loss_speedup"].to_numpy(dtype=float)
        losses = losses[np.isfinite(losses)]
        l_est = geometric_mean(losses) if len(losses) else None
        l_low, l_high = geomean_interval(losses, ci)
        windows = group["loss_window"].dropna()
        taus = group["tau"].dropna()
        rows.append({
            "setting": setting, "bn": bn, "baseline": group["baseline"].iloc[0],
            "n_seeds": len(group), "n_reached": len(steps),
            **{COUNT_COLUMNS[o]: found[o] for o in OUTCOMES[1:]},
            "tau_mean": float(taus.mean()) if len(taus) else None,
            "speedup": est, "ci_low": low, "ci_high": high,
            "grid_low": grid_low, "grid_high": grid_high, "n_ceiling": int(np.isinf(highs).sum()),
            "step_cost": cost, "step_cost_low": cost_low, "step_cost_high": cost_high,
            "time_speedup": t_est, "time_ci_low": t_low, "time_ci_high": t_high,
            "loss_window": int(windows.max()) if len(windows) else None, "n_loss": len(losses),
            "loss_speedup": l_est, "loss_ci_low": l_low, "loss_ci_high": l_high,
            "wall_speedup": w_est, "wall_ci_low": w_low, "wall_ci_high": w_high, "ci": ci,
            "text": paired_text(len(group), outcomes, est, low, high),
        })
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


# ---------------------------------------------------------------- sentences

def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _baseline_name(baseline: str) -> str:
    return "the no-BN run" if baseline == "none" else f"the bn={baseline} run"


# how each no-number outcome reads in a sentence, with the count of seeds
_OUTCOME_PHRASE = {
    NOT_REACHED: "never reached it",
    BN_DIVERGED: "diverged before reaching it",
    BASE_DIVERGED: "had no target because the baseline diverged",
    BASE_NEVER_IMPROVED: "had no target because the baseline never improved on its initial accuracy",
    REACHED_AT_START: "met it already before training (no ratio)",
    NO_BASELINE: "had no baseline run to compare with",
    NO_BN_RUN: "had no run",
}


def _num(x: float) -> str:
    """A ratio for prose: one decimal, two below 1 so that 0.55 does not read as 0.6."""
    return f"{x:.1f}" if x >= 1 else f"{x:.2f}"


def _steps_clause(speedup: float) -> tuple[str, str]:
    """('in 3.2x fewer steps', '') or, when BN was not faster, the honest converse
    with the ratio itself moved into the parenthesis (second element)."""
    if round(speedup, 1) == 1.0:
        return "in about as many steps", f"{speedup:.2f}x, "
    if speedup > 1:
        return f"in {_num(speedup)}x fewer steps", ""
    return f"but needed {_num(1 / speedup)}x as many steps", f"speedup {speedup:.2f}x, "


def _ci_clause(ci: float, low, high) -> str:
    """'95% CI 2.1–4.5', both bounds at one precision; '' when there is no interval; 'the same in every
    seed' for a zero-width one."""
    if low is None or _missing(low):
        return ""
    if low == high:
        return "the same in every seed"
    digits = 2 if low < 1 else 1
    return f"{round(100 * ci)}% CI {low:.{digits}f}–{high:.{digits}f}"


def grid_clause(r) -> str:
    """What the evaluation grid allows the mean ratio to be (its resolution), in words: each run crossed the
    target somewhere after its previous evaluation, so a run that met it by its first evaluation leaves the
    ratio unbounded on its side."""
    k, low, high = int(r["n_reached"]), r["grid_low"], r["grid_high"]
    if low == 0 and math.isinf(high):
        return "the evaluation grid cannot bound it (both runs met the target by their first evaluation)"
    if math.isinf(high):
        return (f"BN met the target by its first evaluation in {int(r['n_ceiling'])} of {_seeds(k)}, so the "
                f"evaluation grid says only that the speedup is at least {_num(low)}x")
    if low == 0:
        return (f"the baseline met the target by its first evaluation, so the evaluation grid says only that the "
                f"speedup is at most {_num(high)}x")
    return f"the evaluation grid places it between {_num(low)}x and {_num(high)}x"


def time_clause(r) -> str:
    """The steps in time, at each network's seconds per step timed alone, in words (faster, about as fast, or
    slower: a ratio below 1 is a slowdown and reads as one)."""
    interval = _ci_clause(r["ci"], r["time_ci_low"], r["time_ci_high"])
    ratio = r["time_speedup"]
    verdict = ("about as fast" if round(ratio, 1) == 1.0 else
               f"{_num(ratio)}x faster" if ratio > 1 else f"{_num(1 / ratio)}x slower")
    return (f"with each network's steps timed alone (BN's steps took {r['step_cost']:.2f}x as long as the "
            f"baseline's, {r['step_cost_low']:.2f}–{r['step_cost_high']:.2f}x over the timing rounds), it was "
            f"{verdict} in time ({ratio:.2f}x" + (f", {interval})" if interval else ")"))


def loss_clause(r) -> str:
    """The per-step measure on the training loss, in words, with the seeds it had a number for."""
    n, k = int(r["n_seeds"]), int(r["n_loss"])
    clause, ratio = _steps_clause(r["loss_speedup"])
    interval = _ci_clause(r["ci"], r["loss_ci_low"], r["loss_ci_high"])
    seeds = _seeds(k) if k == n else f"{k} of {n} seeds"
    return (f"per step, on the training loss averaged over {int(r['loss_window'])} steps, it reached the "
            f"baseline's lowest {clause} ({ratio}{interval + ', ' if interval else ''}{seeds})")


def _ci_cell(low, high) -> str:
    """' [2.1, 4.5]' after a table cell's ratio; '' without an interval; ' (the same in each seed)' for a
    zero-width one (every seed the same ratio), which is not printed as [x, x]."""
    if low is None or _missing(low):
        return ""
    return " (the same in each seed)" if low == high else f" [{low:.2f}, {high:.2f}]"


def loss_text(row) -> str:
    """Table cell: the per-step speedup on the training loss, its interval, and the seeds with a number."""
    if _missing(row.get("loss_speedup")):
        return "—"
    interval = _ci_cell(row.get("loss_ci_low"), row.get("loss_ci_high"))
    return f"{row['loss_speedup']:.2f}x{interval} ({int(row['n_loss'])}/{int(row['n_seeds'])})"


def time_text(row) -> str:
    """Table cell: the time speedup, its interval over seeds, and BN's step cost."""
    if _missing(row.get("time_speedup")):
        return "—" if _missing(row.get("step_cost")) else f"— (BN step {row['step_cost']:.2f}x)"
    interval = _ci_cell(row.get("time_ci_low"), row.get("time_ci_high"))
    return f"{row['time_speedup']:.2f}x{interval} (BN step {row['step_cost']:.2f}x)"


def grid_text(row) -> str:
    """Table cell: the range the evaluation grid allows the mean ratio ('≥ x' at the grid's ceiling, '≤ x'
    where the baseline met the target by its first evaluation)."""
    if _missing(row.get("grid_low")):
        return "—"
    low, high = row["grid_low"], row["grid_high"]
    if low == 0 and math.isinf(high):
        return "no bound (both at the first evaluation)"
    if math.isinf(high):
        return f"≥ {low:.2f}x (ceiling in {int(row['n_ceiling'])}/{int(row['n_reached'])} seeds)"
    if low == 0:
        return f"≤ {high:.2f}x"
    return f"{low:.2f}–{high:.2f}x"


def speedup_findings(paired: pd.DataFrame) -> list[str]:
    """Sentences for the report, one per (setting, BN variant), built only from `paired`."""
    sentences = []
    for _, r in paired.iterrows():
        prefix = "" if r["setting"] == "all runs" else f"With {r['setting']}: "
        who = f"{r['bn']} BN"
        target = f"{_baseline_name(r['baseline'])}'s {name('best_val_acc')}"
        if not _missing(r["tau_mean"]):
            target += f" ({_pct(r['tau_mean'])})"
        n, k = int(r["n_seeds"]), int(r["n_reached"])
        misses = {o: c for o, c in outcome_counts(r).items() if o != REACHED}
        miss_text = ", ".join(f"{c} {_OUTCOME_PHRASE.get(o, o)}" for o, c in misses.items())
        if k:
            seeds = _seeds(k) if k == n else f"{k} of {n} seeds reached it"
            clause, ratio = _steps_clause(r["speedup"])
            interval = _ci_clause(r["ci"], r["ci_low"], r["ci_high"])
            detail = f"{interval}, {seeds}" if interval else f"{seeds}, no interval"
            text = f"{prefix}{who} reached {target} {clause} ({ratio}{detail}); {grid_clause(r)}"
            if not _missing(r.get("time_speedup")):
                text += f"; {time_clause(r)}"
            if not _missing(r.get("loss_speedup")):
                text += f"; {loss_clause(r)}"
            if misses:
                text += f"; of the other seeds, {miss_text}"
            sentences.append(text + ".")
        elif list(misses) == [NOT_REACHED]:
            sentences.append(f"{prefix}{who} never reached {target} in {n}/{n} seeds.")
        elif list(misses) == [BN_DIVERGED]:
            sentences.append(f"{prefix}{who} diverged before reaching {target} in {n}/{n} seeds.")
        else:
            sentences.append(f"{prefix}{who} has no speedup over {_baseline_name(r['baseline'])} "
                             f"(0/{n} seeds reached): {miss_text}.")
    return sentences


# ------------------------------------------------------- the registry entry
PER_SEED_CSV, PAIRED_CSV = "speedup_per_seed.csv", "speedup.csv"


def compute(ctx) -> None:
    summary = ctx.folder("summary")
    axes = ctx.study.axes
    # the networks' seconds per step, timed alone (rule step_times); absent where they were not (a partial report)
    step_times = read_step_times(ctx.results / step_times_table(ctx.study))
    runs = read_runs(summary / "runs.csv", axes)
    steps = {d: pd.read_parquet(ctx.run_root / d / STEPS, columns=["step", "loss"]) for d in runs["run_dir"]
             if (ctx.run_root / d / STEPS).exists()}
    per_seed = speedup_per_seed(runs, pd.read_parquet(summary / "curves.parquet"), axes, step_times=step_times,
                                steps=steps)
    per_seed.to_csv(ctx.out / PER_SEED_CSV, index=False)
    speedup_paired(per_seed).to_csv(ctx.out / PAIRED_CSV, index=False)
    print(per_seed.to_string())


def step_times_table(study) -> str:
    """Below the results folder: the study's step times (rule step_times), an input of the job."""
    return f"timing/{study.name}/{STEP_TIMES_TABLE}"


def speedup_table(paired: pd.DataFrame) -> dict:
    rows = [[r["setting"], r["bn"], r["text"], grid_text(r), time_text(r), loss_text(r)]
            for _, r in paired.iterrows()]
    return table("Speedup from BN: optimizer steps the no-BN run needs to reach its best validation accuracy, "
                 "divided by those the BN run needs to reach the same accuracy; geometric mean over seeds; 95% "
                 f"{INTERVAL_METHOD} of the log ratios, from at least {MIN_SEEDS} seeds. The steps are read on the "
                 "evaluation grid: the column 'on the evaluation grid' is the range the mean ratio may take between "
                 "evaluations "
                 "(≥: BN met the target by its first evaluation, the grid's ceiling).",
                 ["setting", "BN", "steps speedup [95% CI]", "on the evaluation grid",
                  "in time, steps timed alone [95% CI]", "per step, training loss [95% CI]"], rows,
                 ["diverged" in str(r["text"]) for _, r in paired.iterrows()],
                 notes=["In time: each run's steps to the target times its network's seconds per optimizer step, "
                        "timed alone before training (no other job running; median of the timing rounds); BN step: "
                        "BN's seconds per step over the baseline's. The runs' own training seconds are not compared: "
                        "each run trained beside other jobs, so its clock measures its neighbours as much as itself.",
                        "Per step, training loss: the no-BN run's step at its lowest training loss (averaged over a "
                        "quarter epoch of steps around each step) over the first step the BN run's averaged loss is "
                        "as low, seeds with a number of all; every step counts, so this one is not held to the "
                        "evaluation grid, but it measures training loss, not validation accuracy."])


def speedup_measures(per_seed: pd.DataFrame, study) -> dict:
    """stats["measures"]: "speedup" of every per-seed row that has a BN run, keyed by that
    run's parameters without the seed (found by the study's axes: the row's setting values, bn and seed)."""
    axes = study.axes
    specs = {(tuple(spec.as_strings()[a] for a in axes), spec.seed): spec for spec in study.runs}
    out = {"speedup": []}  # not the seconds: those of jobs that shared the machine (see speedup_table)
    for r in per_seed.to_dict(orient="records"):
        if r["outcome"] == NO_BN_RUN:
            continue
        spec = specs[(tuple(str(r[a]) for a in axes), int(r["seed"]))]
        params = {k: v for k, v in spec.as_strings().items() if k != "seed"}
        for measured in out:
            out[measured].append(measure(params, spec.seed, r[measured]))
    return out


def fragment(ctx) -> dict:
    paired = pd.read_csv(ctx.out / PAIRED_CSV)
    per_seed = pd.read_csv(ctx.out / PER_SEED_CSV, dtype={a: str for a in ctx.study.axes})
    return make_fragment(tables=[speedup_table(paired)], findings=speedup_findings(paired),
                         references=["Ioffe & Szegedy 2015"],
                         stats={"measures": speedup_measures(per_seed, ctx.study)})


register(Analysis(
    name="speedup",
    description="steps (and seconds) the no-BN run needs to reach its best validation accuracy over those "
                "the BN run needs, paired by seed, t-interval of the log ratios (Ioffe & Szegedy 2015)",
    compute=compute, fragment=fragment, needs=("summary",), reads=(STEPS,),
    extra_inputs=lambda plan, study: [step_times_table(study)]))
