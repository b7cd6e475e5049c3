"""Declared comparisons (`compare:`): pairs of cells named in the config, compared over seeds.

Each entry of a study's `compare:` list names two cells, a and b (config.py has
checked that each selector matches exactly one cell). For each pair, on final
train and test accuracy and loss, the runs of a and b are paired by seed
(evidence.pair: seed s of a against seed s of b), and the mean of the paired
differences a - b is given with its 95% paired t-interval (evidence.t_interval)
when at least 3 seeds pair. Diverged runs are left out of the pairs and means,
and counted.

A direction is called only from the interval: "higher" / "lower" when it
excludes 0, "no clear difference" when it includes 0; with one or two seeds
the differences are stated, two said to agree or disagree in sign, and not
called. Every number comes from the runs
(summary's runs.csv), through this analysis's own comparisons.csv.
"""

from __future__ import annotations

import math

import pandas as pd

from bnlab.analyses.collect import read_runs
from bnlab.analyses.evidence import (MIN_SEEDS, Paired, finite, pair, signs_agree, still_training_runs,
                                     still_training_words, t_interval, where_decided)
from bnlab.analyses.registry import Analysis, fragment, register, table
from bnlab.runfolder import METRICS, read_json, write_json

COMPARISONS_CSV, COMPARISONS_JSON = "comparisons.csv", "comparisons.json"
# (runs.csv column, words in a sentence, table's metric cell), in the order sentences and tables give them
COMPARED = (
    ("final_test_acc", "test accuracy", "test acc %"),
    ("final_train_acc", "train accuracy", "train acc %"),
    ("final_test_loss", "test loss", "test loss"),
    ("final_train_loss", "train loss", "train loss"),
)
HIGHER, LOWER, UNCLEAR, NO_PAIR = "higher", "lower", "no clear difference", "no pair"
ONE_SEED, AGREE, DISAGREE = "one seed", "seeds agree in sign", "seeds disagree in sign"  # fewer than MIN_SEEDS
STILL_TRAINING = "not called: still training"
NB = "\u00a0"  # non-breaking space: "[-1.2, -0.4]" stays on one line of a narrow column


def _is_acc(metric: str) -> bool:
    return metric.endswith("_acc")


def _value(x) -> float:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return math.nan
    return x if math.isfinite(x) else math.nan


# ------------------------------------------------------------------ the numbers
def side_runs(study, runs: pd.DataFrame, partial: dict) -> pd.DataFrame:
    """The runs.csv rows of the cell a selector names (one per seed)."""
    by_dir = runs.set_index("run_dir")
    dirs = [spec.relative_dir() for spec in study.select(partial)]
    missing = [d for d in dirs if d not in by_dir.index]
    if missing:
        raise KeyError(f"runs.csv has no row for run {missing[0]} of study '{study.name}'")
    rows = by_dir.loc[dirs].reset_index()
    if rows.seed.duplicated().any():
        raise ValueError(f"selector {partial} matches more than one run per seed in study '{study.name}'")
    return rows


def comparison_rows(study, runs: pd.DataFrame, curves: pd.DataFrame | None = None) -> tuple[pd.DataFrame, list[dict]]:
    """Long per-seed table (index, comparison, metric, seed, a, b, diff, a_status, b_status) and, per
    comparison, its cells: labels, selectors, run counts and the runs still training (evidence.still_training,
    from `curves`). A diverged run's values are left empty."""
    rows, cells = [], []
    for index, c in enumerate(study.compare):
        sides = {side: side_runs(study, runs, c[side]) for side in ("a", "b")}
        info = {"index": index, "name": c["name"], "a": dict(c["a"]), "b": dict(c["b"])}
        for side, frame in sides.items():
            diverged = frame[frame.status.astype(str) != "ok"]
            info[f"{side}_label"] = study.label(study.select(c[side])[0])
            info[f"{side}_runs"] = len(frame)
            info[f"{side}_diverged"] = len(diverged)
            info[f"{side}_diverged_seeds"] = sorted(int(s) for s in diverged.seed)
        info["still_training"] = still_training_runs(pd.concat(sides.values()), curves)
        cells.append(info)
        by_seed = {side: {int(r.seed): r for _, r in frame.iterrows()} for side, frame in sides.items()}
        seeds = sorted(set(by_seed["a"]) | set(by_seed["b"]))
        for metric, _, _ in COMPARED:
            for seed in seeds:
                values, status = {}, {}
                for side in ("a", "b"):
                    r = by_seed[side].get(seed)
                    status[side] = "absent" if r is None else str(r["status"])
                    ok = r is not None and status[side] == "ok" and metric in r.index
                    values[side] = _value(r[metric]) if ok else math.nan
                diff = values["a"] - values["b"] if finite(values["a"]) and finite(values["b"]) else math.nan
                rows.append({"index": index, "comparison": c["name"], "metric": metric, "seed": seed,
                             "a": values["a"], "b": values["b"], "diff": diff,
                             "a_status": status["a"], "b_status": status["b"]})
    columns = ["index", "comparison", "metric", "seed", "a", "b", "diff", "a_status", "b_status"]
    return pd.DataFrame(rows, columns=columns), cells


def paired_of(long: pd.DataFrame, index: int, metric: str) -> Paired:
    """Seeds of one comparison and metric paired (evidence.pair): seeds where both sides finished."""
    sel = long[(long["index"] == index) & (long.metric == metric)]
    return pair(dict(zip(sel.seed.astype(int), sel.a)), dict(zip(sel.seed.astype(int), sel.b)))


def direction(p: Paired, interval) -> str:
    """The word for a - b: from the interval only; below MIN_SEEDS not called (two seeds: whether they agree)."""
    if p.n == 0:
        return NO_PAIR
    if p.n == 1:
        return ONE_SEED
    if interval is None:
        return AGREE if signs_agree(p.diffs) else DISAGREE
    lo, hi = interval
    return HIGHER if lo > 0 else LOWER if hi < 0 else UNCLEAR


def metric_result(p: Paired) -> dict:
    """Means over the paired seeds (so a - b = diff), the mean difference, its interval and direction."""
    interval = t_interval(p.diffs)
    return {"a": float(pd.Series(p.a).mean()) if p.n else None,
            "b": float(pd.Series(p.b).mean()) if p.n else None,
            "diff": p.mean_diff, "diffs": [float(x) for x in p.diffs],
            "interval": list(interval) if interval else None, "seeds": p.n,
            "direction": direction(p, interval)}


def results(long: pd.DataFrame, cells: list[dict]) -> list[dict]:
    """stats["comparisons"]: per comparison its cells and, per metric, a, b, diff, interval, seeds; no
    direction is called for a pair with a run still training (its final numbers are a snapshot)."""
    out = []
    for info in cells:
        metrics = {metric: metric_result(paired_of(long, info["index"], metric)) for metric, _, _ in COMPARED}
        if info.get("still_training"):
            for m in metrics.values():
                if m["direction"] in (HIGHER, LOWER, UNCLEAR):
                    m["direction"] = STILL_TRAINING
        out.append({**info, "metrics": metrics})
    return out


# ------------------------------------------------------------------ words
def _sig3(x: float, sign: str = "") -> str:
    """3 significant digits, trailing zeros kept: 0.3 -> '0.300', -0.1 -> '-0.100', 12.34 -> '12.3'."""
    return f"{x:{sign}#.3g}".removesuffix(".")


def _val(metric: str, x) -> str:
    return f"{100 * x:.1f}%" if _is_acc(metric) else _sig3(x)


def _diff(metric: str, x) -> str:
    return f"{100 * x:+.1f}" if _is_acc(metric) else _sig3(x, "+")


def _interval(metric: str, interval) -> str:
    lo, hi = interval
    return f"[{_diff(metric, lo)},{NB}{_diff(metric, hi)}]"


def _diffs(metric: str, m: dict) -> str:
    """The per-seed differences of a metric below MIN_SEEDS: '+5.0 and +6.0'."""
    return " and ".join(_diff(metric, x) for x in m["diffs"])


def spread_text(metric: str, m: dict) -> str:
    """'2 seeds: +0.3 and +0.5, seeds agree in sign' below MIN_SEEDS; 'the same in all 3 seeds' for a
    zero-width interval (not printed as one); '3 seeds, 95% interval [-1.2, -0.4]' otherwise."""
    if m["interval"] is None:
        return f"{m['seeds']} seeds: {_diffs(metric, m)}, {m['direction']}"
    lo, hi = m["interval"]
    if hi - lo == 0:
        return f"the same in all {m['seeds']} seeds"
    return f"{m['seeds']} seeds, 95% interval {_interval(metric, m['interval'])}"


def metric_phrase(metric: str, words: str, m: dict, one_seed_said: bool = False) -> str:
    """'test accuracy 88.1% vs 88.9%, -0.8 points (3 seeds, 95% interval [-1.2, -0.4]): lower'.

    With one seed the difference is given and not called ('(one seed: no spread to judge by)', left out
    when `one_seed_said`: the sentence says it once for every metric); with two, both differences and
    whether they agree, not called either."""
    if m["seeds"] == 0:
        return f"{words}: no seed with a finished run of both cells"
    unit = " points" if _is_acc(metric) else ""
    text = f"{words} {_val(metric, m['a'])} vs {_val(metric, m['b'])}, {_diff(metric, m['diff'])}{unit}"
    if m["direction"] == ONE_SEED:
        return text + ("" if one_seed_said else " (one seed: no spread to judge by)")
    if m["interval"] is None:
        return text + f" ({spread_text(metric, m)}; no direction from fewer than {MIN_SEEDS})"
    return text + f" ({spread_text(metric, m)}): {m['direction']}"


def diverged_note(c: dict) -> str:
    """'a diverged in 1/2 runs (seed 1)' and the same for b, joined ('' when no run diverged)."""
    parts = []
    for side in ("a", "b"):
        k, n = c[f"{side}_diverged"], c[f"{side}_runs"]
        if k:
            seeds = c[f"{side}_diverged_seeds"]
            parts.append(f"{side} diverged in {k}/{n} run{'s' if n != 1 else ''} "
                         f"(seed{'s' if len(seeds) != 1 else ''} {', '.join(map(str, seeds))})")
    return " and ".join(parts)


def comparison_sentence(c: dict, scale_note: str = "") -> str:
    """One sentence per comparison, every number from its stats entry: the first compared metric (test
    accuracy) with its means, spread and direction, the others by their mean difference only (the table
    beside it gives each one's spread, and four full phrases buried the one a reader repeats);
    `scale_note` (evidence.where_decided) ends it where a metric was not called for want of seeds."""
    kinds = {c["metrics"][metric]["direction"] for metric, _, _ in COMPARED} - {NO_PAIR}
    once = kinds == {ONE_SEED}  # every metric one seed: said once, not four times
    (lead, words, _), *others = COMPARED
    phrases = [metric_phrase(lead, words, c["metrics"][lead], once)]
    rest = [f"{words} {_diff(metric, c['metrics'][metric]['diff'])}{' points' if _is_acc(metric) else ''}"
            for metric, words, _ in others if c["metrics"][metric]["seeds"]]
    if rest:
        phrases.append(", ".join(rest) + (" (a - b)" if once else " (a - b; the table gives their spread)"))
    head = f"{c['name']} ({c['a_label']} vs {c['b_label']})" + (", one seed: no spread to judge by" if once else "")
    text = head + ": " + "; ".join(phrases) + "."
    note = diverged_note(c)
    text += f" Left out of the pairs and means: {note}." if note else ""
    if scale_note and kinds & {ONE_SEED, AGREE, DISAGREE}:
        text += f" Not called: {scale_note}."
    if c.get("still_training"):
        text += f" Still training: {still_training_words(c['still_training'])}."
    return text


def cells_table(comparisons: list[dict]) -> dict:
    rows = [[c["name"], c["a_label"], c["b_label"],
             f"{c['a_runs'] - c['a_diverged']}/{c['a_runs']}", f"{c['b_runs'] - c['b_diverged']}/{c['b_runs']}"]
            for c in comparisons]
    caption = ("Declared comparisons (the study's compare: list): the two cells of each pair, a and b, by their "
               "grid values, and the runs of each that finished / all its runs (diverged runs are left out of the "
               "pairs).")
    return table(caption, ["comparison", "a", "b", "a finished", "b finished"], rows,
                 [bool(c["a_diverged"] or c["b_diverged"]) for c in comparisons])


def numbers_table(comparisons: list[dict]) -> dict:
    rows, marks = [], []
    for c in comparisons:
        for i, (metric, _, cell) in enumerate(COMPARED):
            m = c["metrics"][metric]
            if m["seeds"] == 0:
                values = ["—", "—", "—", "no seed with both finished"]
            else:
                if m["seeds"] == 1:
                    interval = "one seed: no interval"
                elif m["interval"] is None:
                    interval = f"no interval: {_diffs(metric, m)}, {m['direction']}"
                elif m["interval"][0] == m["interval"][1]:
                    interval = f"same in every seed: {m['direction']}"
                else:
                    interval = _interval(metric, m["interval"]) + f" {m['direction']}"
                values = [_val(metric, m["a"]).removesuffix("%"), _val(metric, m["b"]).removesuffix("%"),
                          _diff(metric, m["diff"]), interval]
            seeds = str(m["seeds"])
            div = [f"{side} {c[f'{side}_diverged']}/{c[f'{side}_runs']}" for side in ("a", "b")
                   if c[f"{side}_diverged"]]
            if div:
                seeds += f" (diverged: {', '.join(div)})"
            rows.append([c["name"] if i == 0 else "", cell, *values, seeds])
            marks.append(bool(div))
    caption = ("Declared comparisons on the final train and test accuracy (in %) and loss, seeds paired (seed s of "
               "a against seed s of b); a and b are means over the seeds where both finished, a - b the mean "
               "paired difference (accuracies in percentage points; losses to 3 significant digits). The 95% "
               f"interval is the paired t-interval of the mean difference over seeds, drawn from at least {MIN_SEEDS} "
               "paired seeds; higher / lower only when it excludes 0, no clear difference when it includes 0; "
               "with fewer seeds the differences are given and not called. seeds: how many paired.")
    return table(caption, ["comparison", "metric", "a", "b", "a - b", "95% interval", "seeds"], rows, marks)


# ------------------------------------------------------------------ the registry entry
def compute(ctx) -> None:
    study = ctx.study
    runs = read_runs(ctx.folder("summary") / "runs.csv", study.axes)
    long, cells = comparison_rows(study, runs, pd.read_parquet(ctx.folder("summary") / "curves.parquet"))
    long.to_csv(ctx.out / COMPARISONS_CSV, index=False)
    write_json(ctx.out / COMPARISONS_JSON, {"comparisons": cells})


def make_fragment(ctx) -> dict:
    cells = read_json(ctx.out / COMPARISONS_JSON)["comparisons"]
    if not cells:
        return fragment(findings=[f"Study '{ctx.study.name}' declares no comparisons (its config has no "
                                  "compare: list)."], stats={"comparisons": []})
    long = pd.read_csv(ctx.out / COMPARISONS_CSV, dtype={"comparison": str, "metric": str})
    comparisons = results(long, cells)
    scale_note = where_decided(ctx.study)
    return fragment(findings=[comparison_sentence(c, scale_note) for c in comparisons],
                    tables=[cells_table(comparisons), numbers_table(comparisons)],
                    stats={"comparisons": comparisons})


register(Analysis(
    name="comparisons",
    description="declared pairs of cells (compare:) on final train and test accuracy and loss, seeds paired: "
                "the mean difference with its 95% paired t-interval over seeds and a sentence each "
                "(seed 003 p. 1.3-1.5)",
    compute=compute, fragment=make_fragment, needs=("summary",), reads=(METRICS,)))
