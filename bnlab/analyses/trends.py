"""Longer training: cells that differ only in `epochs`, compared (seed 000 exercise 2e).

"How far can you bring up the test accuracy by continuing the training?" For
every pair of cells of a study that differ only in the epochs axis: mean test
accuracy over seeds of the shorter and the longer run, the difference and
whether it exceeds twice the seeds' spread; and, from the longer run's own
curve, validation (and, where recorded, test) accuracy at the shorter run's
epoch count against the end, with the slope over its last k curve points
(was it still rising when training stopped?). A study without an epochs axis
gets one sentence saying so.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bnlab.analyses.collect import read_runs
from bnlab.analyses.registry import Analysis, fragment, register, table
from bnlab.runfolder import read_json, write_json

TRENDS_CSV, TRENDS_JSON = "trends.csv", "trends.json"
AXIS = "epochs"
METRIC = "final_test_acc"
SPREAD_FACTOR = 2  # "clear" = the difference exceeds twice the larger of the two cells' sd over seeds
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
        for (_, short), (_, long) in zip(group.iloc[:-1].iterrows(), group.iloc[1:].iterrows()):
            pairs.append({"setting": setting, "short_label": short["label"], "long_label": long["label"],
                          "short_epochs": short["epochs_value"], "long_epochs": long["epochs_value"]})
    return pairs


def curve_at(curve: pd.DataFrame, epoch: float) -> float:
    """acc of the last curve point at or before `epoch` (NaN if none)."""
    before = curve[curve.epoch <= epoch + 1e-9]
    return float(before.acc.iloc[-1]) if len(before) else math.nan


def end_slope(curve: pd.DataFrame, k: int) -> float:
    """Least-squares slope of acc against epoch over the last k curve points (NaN with fewer than 2)."""
    tail = curve.tail(k)
    if len(tail) < 2 or tail.epoch.nunique() < 2:
        return math.nan
    return float(np.polyfit(tail.epoch.astype(float), tail.acc.astype(float), 1)[0])


def _curve(curves: pd.DataFrame, label: str, seed, split: str) -> pd.DataFrame:
    sel = curves[(curves.label == label) & (curves.seed == seed) & (curves.split == split)]
    sel = sel[np.isfinite(sel.acc.astype(float))]
    return sel.sort_values("step")


def _verdict(diff: float, spread: float, n_short: int, n_long: int) -> str:
    if n_short == 0 or n_long == 0:
        return "no finished runs"
    if min(n_short, n_long) < 2 or not _present(spread):
        return "inconclusive"
    if diff > SPREAD_FACTOR * spread:
        return "improved"
    if diff < -SPREAD_FACTOR * spread:
        return "worse"
    return "no clear change"


def _trend(slopes: list[float]) -> str:
    slopes = [s for s in slopes if _present(s)]
    if not slopes:
        return "too few points"
    if all(s > 0 for s in slopes):
        return "still rising"
    if all(s <= 0 for s in slopes):
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
        spread = max(sd["short"], sd["long"]) if _present(sd["short"]) and _present(sd["long"]) else math.nan
        # paired by seed: same seed = same initial draw and data order
        by_seed = {k: dict(zip(ok[k].seed, pd.to_numeric(ok[k][metric], errors="coerce"))) for k in ok}
        common = [s for s in by_seed["long"] if s in by_seed["short"]
                  and _present(by_seed["long"][s]) and _present(by_seed["short"][s])]
        up = sum(by_seed["long"][s] > by_seed["short"][s] for s in common)
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
            "diff": diff, "spread": spread, "n_paired": len(common), "paired_up": up,
            "verdict": _verdict(diff, spread, n_short, n_long),
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
    band = f"{SPREAD_FACTOR * 100 * r['spread']:.1f} points" if _present(r["spread"]) else ""
    text += {
        "improved": f"The gain exceeds twice the seeds' spread ({band}): longer training helped.",
        "worse": f"The drop exceeds twice the seeds' spread ({band}): longer training hurt.",
        "no clear change": f"That is within twice the seeds' spread ({band}): no clear change.",
        "inconclusive": "With one seed per cell there is no spread to weigh it against: inconclusive.",
    }[r["verdict"]]
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


def trend_table(frame: pd.DataFrame, last_points: int) -> dict:
    with_test = frame["test_at_end"].map(_present).any()
    header = ["setting", "epochs", "test acc % short", "test acc % long", "diff (points; seeds up)",
              f"{SPREAD_FACTOR}x sd (points)", "verdict", "long run: val % at short epochs → end"]
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
               f"{SPREAD_FACTOR * 100 * r['spread']:.1f}" if _present(r["spread"]) else "—", r["verdict"],
               f"{pct(r['val_at_short'])}{NB}→{NB}{pct(r['val_at_end'])}"]
        if with_test:
            row.append(f"{pct(r['test_at_short'])}{NB}→{NB}{pct(r['test_at_end'])}")
        row += [f"{100 * r['slope']:+.2f}" if _present(r["slope"]) else "—",
                f"{r['trend']} ({r['slopes_up']}/{r['slopes_n']})" if r["trend"] == "mixed" else r["trend"]]
        rows.append(row)
    caption = ("Longer training, per pair of cells that differ only in epochs: test accuracy (whole test set, "
               "mean ± sd over finished seeds), the difference (long - short; seeds paired by seed) and its "
               f"verdict (improved / worse = the difference exceeds {SPREAD_FACTOR}x the larger sd over seeds; "
               "inconclusive with one seed). From the longer run's own curve (the curve subset): validation "
               + ("and test " if with_test else "") + "accuracy at the shorter run's epoch count and at the end, "
               f"and the least-squares slope of validation accuracy over its last {last_points} curve points "
               "(still rising = positive in every seed, flat or falling = in none, mixed: seeds rising/seeds).")
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
                "against the seeds' spread, and whether the longer run's validation curve was still rising "
                "(seed 000 ex. 2e)",
    compute=compute, fragment=make_fragment, needs=("summary",),
    options={"last_points": {"type": "integer", "minimum": 2, "default": 3,
                             "description": "curve points at the end of the longer run that the slope is fitted to"}}))
