"""Longer training: cells that differ only in `epochs`, compared (seed 000 exercise 2e).

"How far can you bring up the test accuracy by continuing the training?" For
every pair of cells of a study that differ only in the epochs axis: mean test
accuracy over seeds of the shorter and the longer run, the difference paired
by seed and whether its 95% paired t-interval (evidence.t_interval, at least 3
paired seeds) excludes 0; and, from the longer run's own
curve, validation (and, where recorded, test) accuracy at the shorter run's
epoch count against the end, with the slope over its last k curve points
(was it still rising when training stopped?). A study without an epochs axis
gets one sentence saying so.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bnlab.analyses.collect import read_runs, setting_name
from bnlab.analyses.evidence import MIN_SEEDS, STILL_RISING, end_slope, t_interval, what_would_decide
from bnlab.analyses.evidence import pair as pair_seeds
from bnlab.analyses.registry import Analysis, fragment, register, table
from bnlab.runfolder import read_json, write_json

TRENDS_CSV, TRENDS_JSON = "trends.csv", "trends.json"
AXIS = "epochs"
METRIC = "final_test_acc"
NB = "\u00a0"  # non-breaking space: "83.0 ± 0.1" and "4 → 8" stay on one line of a narrow column


def _num(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _present(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def _setting(row: pd.Series, axes: list[str]) -> str:
    others = [a for a in axes if a != AXIS]
    return ", ".join(f"{a}={row[a]}" for a in others if str(row[a]) != "na") or "all runs"


def epoch_pairs(runs: pd.DataFrame, axes: list[str]) -> list[dict]:
    """Pairs of cells (labels) equal in every axis but epochs: consecutive epoch counts within a setting."""
    if AXIS not in axes:
        return []
    cells = runs.drop_duplicates("label").copy()
    cells["setting"] = cells.apply(lambda r: _setting(r, axes), axis=1)
    cells["epochs_value"] = cells[AXIS].map(_num)
    pairs = []
    for setting, group in cells.groupby("setting", sort=False):
        group = group.sort_values("epochs_value")
        # a named cell ('ReLU + dropout, epochs=4') names its setting without the epochs: 'ReLU + dropout'
        named = ", ".join(part for part in str(group["label"].iloc[0]).split(", ") if not part.startswith(f"{AXIS}="))
        name = setting_name(setting, named)
        for (_, short), (_, long) in zip(group.iloc[:-1].iterrows(), group.iloc[1:].iterrows()):
            pairs.append({"setting": name, "short_label": short["label"], "long_label": long["label"],
                          "short_epochs": short["epochs_value"], "long_epochs": long["epochs_value"]})
    return pairs


def curve_at(curve: pd.DataFrame, epoch: float) -> float:
    """acc of the last curve point at or before `epoch` (NaN if none)."""
    before = curve[curve.epoch <= epoch + 1e-9]
    return float(before.acc.iloc[-1]) if len(before) else math.nan


def _curve(curves: pd.DataFrame, label: str, seed, split: str) -> pd.DataFrame:
    sel = curves[(curves.label == label) & (curves.seed == seed) & (curves.split == split)]
    sel = sel[np.isfinite(sel.acc.astype(float))]
    return sel.sort_values("step")


def _verdict(interval, n_short: int, n_long: int) -> str:
    """From the paired interval of long - short only: none below MIN_SEEDS paired seeds."""
    if n_short == 0 or n_long == 0:
        return "no finished runs"
    if interval is None:
        return "inconclusive"
    lo, hi = interval
    return "improved" if lo > 0 else "worse" if hi < 0 else "no clear change"


def _trend(slopes: list[float]) -> str:
    slopes = [s for s in slopes if _present(s)]
    if not slopes:
        return "too few points"
    # one rule for "still training" (evidence.still_training): rising faster than STILL_RISING per epoch
    if all(s > STILL_RISING for s in slopes):
        return "still rising"
    if all(s <= STILL_RISING for s in slopes):
        return "flat or falling"
    return "mixed"


def trend_rows(runs: pd.DataFrame, curves: pd.DataFrame, axes: list[str], last_points: int = 3,
               metric: str = METRIC) -> pd.DataFrame:
    """One row per epoch pair: the two cells' mean/sd of `metric` over finished seeds, the difference, its
    verdict, and the longer run's curve (val, and test where recorded) at the shorter epoch count and at the
    end, with the per-seed slopes of validation accuracy over its last `last_points` curve points."""
    rows = []
    for pair in epoch_pairs(runs, axes):
        ok = {key: runs[(runs.label == pair[f"{key}_label"]) & (runs.status == "ok")] for key in ("short", "long")}
        vals = {key: pd.to_numeric(ok[key][metric], errors="coerce").dropna() for key in ok}
        n_short, n_long = len(vals["short"]), len(vals["long"])
        mean = {k: float(v.mean()) if len(v) else math.nan for k, v in vals.items()}
        sd = {k: float(v.std(ddof=1)) if len(v) > 1 else math.nan for k, v in vals.items()}
        diff = mean["long"] - mean["short"]
        # paired by seed: same seed = same initial draw and data order
        by_seed = {k: dict(zip(ok[k].seed, pd.to_numeric(ok[k][metric], errors="coerce"))) for k in ok}
        paired = pair_seeds(by_seed["long"], by_seed["short"])
        interval = t_interval(paired.diffs)
        up = int((paired.diffs > 0).sum())
        # the longer run's own curve, per seed
        at_short, at_end, t_short, t_end, slopes, first_tail = [], [], [], [], [], []
        for seed in ok["long"].seed:
            val = _curve(curves, pair["long_label"], seed, "val")
            if len(val):
                at_short.append(curve_at(val, pair["short_epochs"]))
                at_end.append(float(val.acc.iloc[-1]))
                slopes.append(end_slope(val, last_points))
                first_tail.append(float(val.tail(last_points).epoch.iloc[0]))
            test = _curve(curves, pair["long_label"], seed, "test")
            if len(test):
                t_short.append(curve_at(test, pair["short_epochs"]))
                t_end.append(float(test.acc.iloc[-1]))
        avg = lambda xs: float(np.nanmean(xs)) if any(_present(x) for x in xs) else math.nan  # noqa: E731
        rows.append({
            **pair, "metric": metric, "n_short": n_short, "n_long": n_long,
            "n_short_runs": int((runs.label == pair["short_label"]).sum()),
            "n_long_runs": int((runs.label == pair["long_label"]).sum()),
            "short_mean": mean["short"], "short_sd": sd["short"], "long_mean": mean["long"], "long_sd": sd["long"],
            "diff": diff, "paired_diff": paired.mean_diff if paired.n else math.nan,
            "ci_low": interval[0] if interval else math.nan, "ci_high": interval[1] if interval else math.nan,
            "n_paired": paired.n, "paired_up": up,
            "decide": what_would_decide(paired.diffs, abs(paired.mean_diff)) if paired.n else "",
            "verdict": _verdict(interval, n_short, n_long),
            "val_at_short": avg(at_short), "val_at_end": avg(at_end),
            "test_at_short": avg(t_short), "test_at_end": avg(t_end),
            "slope": avg(slopes), "slopes_up": sum(s > 0 for s in slopes if _present(s)),
            "slopes_n": sum(_present(s) for s in slopes), "trend": _trend(slopes),
            "tail_from_epoch": min(first_tail) if first_tail else math.nan, "last_points": last_points,
        })
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ sentences
def _pct(x) -> str:
    return f"{100 * x:.1f}%"


def _ep(x: float) -> str:
    return f"{x:g}"


def interval_text(r: dict) -> str:
    """'95% interval [+2.1, +4.0] points over 3 paired seeds', or 'the same in all 3 paired seeds'."""
    if r["ci_low"] == r["ci_high"]:
        return f"the same in all {r['n_paired']} paired seeds"
    return f"95% interval [{100 * r['ci_low']:+.1f}, {100 * r['ci_high']:+.1f}] points over {r['n_paired']} paired seeds"


def verdict_sentence(r: dict) -> str:
    if r["verdict"] == "inconclusive":
        n = r["n_paired"]
        return (f"With {n if n else 'no'} paired seed{'s' if n != 1 else ''} there is no interval (it needs "
                f"{MIN_SEEDS}): inconclusive" + (f"; {r['decide']}." if r["decide"] else "."))
    ending = {"improved": "it excludes 0: longer training helped.", "worse": "it excludes 0: longer training hurt.",
              "no clear change": "it includes 0: no clear change" + (f"; {r['decide']}." if r["decide"] else ".")}
    return f"The paired difference: {interval_text(r)}; {ending[r['verdict']]}"


def trend_sentence(r: pd.Series | dict) -> str:
    """One sentence-pair per epoch pair, every number from the row."""
    r = dict(r)
    setting, es, el = r["setting"], _ep(r["short_epochs"]), _ep(r["long_epochs"])
    if r["verdict"] == "no finished runs":
        return (f"{setting}: {el} against {es} epochs cannot be compared: "
                f"{'the shorter' if r['n_short'] == 0 else 'the longer'} cell has no finished run.")
    sd = lambda key: f" ± {100 * r[key]:.1f}" if _present(r[key]) else ""  # noqa: E731
    diff = 100 * r["diff"]
    verb = "raised" if diff > 0 else "lowered" if diff < 0 else "left"
    text = (f"{setting}: training {el} instead of {es} epochs {verb} the test accuracy "
            f"{'at' if verb == 'left' else 'from'} {_pct(r['short_mean'])}{sd('short_sd')}"
            f"{'' if verb == 'left' else ' to ' + _pct(r['long_mean']) + sd('long_sd')} ({diff:+.1f} points"
            + (f"; higher in {r['paired_up']} of {r['n_paired']} seeds" if r["n_paired"] else "") + "). ")
    text += verdict_sentence(r)
    if _present(r["val_at_end"]):
        text += (f" The {el}-epoch run's own validation curve went from {_pct(r['val_at_short'])} at epoch {es} "
                 f"to {_pct(r['val_at_end'])} at epoch {el}")
        if _present(r["test_at_end"]):
            text += f" (its test curve from {_pct(r['test_at_short'])} to {_pct(r['test_at_end'])})"
        if _present(r["slope"]):
            k, n, up = int(r["last_points"]), int(r["slopes_n"]), int(r["slopes_up"])
            text += (f"; over its last {k} curve points (from epoch {_ep(r['tail_from_epoch'])}) it changed by "
                     f"{100 * r['slope']:+.2f} points per epoch, ")
            text += {"still rising": f"rising in {'every seed' if n > 1 else 'its one seed'}: it was still "
                                     "improving when training stopped, so more epochs may help further.",
                     "flat or falling": f"flat or falling in {'every seed' if n > 1 else 'its one seed'}: it had "
                                        "levelled off.",
                     "mixed": f"rising in {up} of {n} seeds: no clear trend at the end."}[r["trend"]]
        else:
            text += "."
    return text


def _interval_cell(r) -> str:
    if not _present(r["ci_low"]):
        return f"none ({r['n_paired']} paired)"
    if r["ci_low"] == r["ci_high"]:
        return "same in every seed"
    return f"[{100 * r['ci_low']:+.1f},{NB}{100 * r['ci_high']:+.1f}]"


def trend_table(frame: pd.DataFrame, last_points: int) -> dict:
    with_test = frame["test_at_end"].map(_present).any()
    header = ["setting", "epochs", "test acc % short", "test acc % long", "diff (points; seeds up)",
              "95% interval (points)", "verdict", "long run: val % at short epochs → end"]
    header += ["long run: test curve % → end"] if with_test else []
    header += [f"val slope, last {last_points} points (points/epoch)", "end of curve"]
    def pm(m, s) -> str:
        return "—" if not _present(m) else f"{100 * m:.1f}" + (f"{NB}±{NB}{100 * s:.1f}" if _present(s) else "")

    pct = lambda x: f"{100 * x:.1f}" if _present(x) else "—"  # noqa: E731
    rows = []
    for _, r in frame.iterrows():
        row = [r["setting"], f"{_ep(r['short_epochs'])}{NB}→{NB}{_ep(r['long_epochs'])}",
               pm(r["short_mean"], r["short_sd"]),
               pm(r["long_mean"], r["long_sd"]),
               (f"{100 * r['diff']:+.1f}" if _present(r["diff"]) else "—")
               + (f" ({r['paired_up']}/{r['n_paired']})" if r["n_paired"] else ""),
               _interval_cell(r), r["verdict"],
               f"{pct(r['val_at_short'])}{NB}→{NB}{pct(r['val_at_end'])}"]
        if with_test:
            row.append(f"{pct(r['test_at_short'])}{NB}→{NB}{pct(r['test_at_end'])}")
        row += [f"{100 * r['slope']:+.2f}" if _present(r["slope"]) else "—",
                f"{r['trend']} ({r['slopes_up']}/{r['slopes_n']})" if r["trend"] == "mixed" else r["trend"]]
        rows.append(row)
    caption = ("Longer training, per pair of cells that differ only in epochs: test accuracy (whole test set, "
               "mean ± sd over finished seeds), the difference (long - short; seeds paired by seed), its 95% paired "
               f"t-interval and verdict (improved / worse = the interval excludes 0; from at least {MIN_SEEDS} paired "
               "seeds, else inconclusive). From the longer run's own curve (the curve subset): validation "
               + ("and test " if with_test else "") + "accuracy at the shorter run's epoch count and at the end, "
               f"and the least-squares slope of validation accuracy over its last {last_points} curve points "
               f"(still rising = above {100 * STILL_RISING:g} points per epoch in every seed, flat or falling = "
               "in none, mixed: seeds rising/seeds).")
    return table(caption, header, rows, [r["verdict"] == "no finished runs" for _, r in frame.iterrows()])


def no_axis_finding(study_name: str, epochs: list[str]) -> str:
    values = ", ".join(epochs) or "the default"
    return (f"Study '{study_name}' has no epochs axis (its runs train {values} epochs), so no cell has a longer-"
            "trained twin to compare with; add an epochs value to its grid to see how far longer training goes.")


# ------------------------------------------------------------------ the registry entry
def compute(ctx) -> None:
    summary = ctx.folder("summary")
    study = ctx.study
    info = {"has_axis": AXIS in study.axes, "epochs": sorted({r.as_strings()[AXIS] for r in study.runs}, key=_num)}
    if info["has_axis"]:
        runs = read_runs(summary / "runs.csv", study.axes)
        curves = pd.read_parquet(summary / "curves.parquet")
        frame = trend_rows(runs, curves, study.axes, last_points=ctx.options["last_points"])
        frame.to_csv(ctx.out / TRENDS_CSV, index=False)
        info["pairs"] = len(frame)
    write_json(ctx.out / TRENDS_JSON, info)


def make_fragment(ctx) -> dict:
    info = read_json(ctx.out / TRENDS_JSON)
    if not info["has_axis"]:
        return fragment(findings=[no_axis_finding(ctx.study.name, info["epochs"])])
    if not info.get("pairs"):
        return fragment(findings=[f"Study '{ctx.study.name}' varies epochs ({', '.join(info['epochs'])}), but no "
                                  "two cells differ in epochs alone, so there is no pair to compare."])
    frame = pd.read_csv(ctx.out / TRENDS_CSV, dtype={"setting": str, "short_label": str, "long_label": str})
    findings = [trend_sentence(r) for _, r in frame.iterrows()]
    return fragment(findings=findings, tables=[trend_table(frame, ctx.options["last_points"])])


register(Analysis(
    name="trends",
    description="longer training: cells that differ only in epochs, test accuracy short vs long over seeds "
                "with its paired t-interval over seeds, and whether the longer run's validation curve was still rising "
                "(seed 000 ex. 2e)",
    compute=compute, fragment=make_fragment, needs=("summary",),
    options={"last_points": {"type": "integer", "minimum": 2, "default": 3,
                             "description": "curve points at the end of the longer run that the slope is fitted to"}}))
