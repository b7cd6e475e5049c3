"""Expected vs observed: the literature's claims (a study's `expect:`) checked against its runs.

Each claim has a testable form (config/schema.yaml, $defs expectation) and gets
a verdict, confirmed, contradicted or inconclusive, with the observed numbers
and the reason beside it. The decision rules (bnlab.analyses.evidence):

- chance / above_chance: a finished run is "at chance" when its metric is at
  most 1/classes + tolerance (default 0.05). Confirmed when every run agrees
  with the claim, contradicted when every run disagrees, inconclusive when the
  seeds disagree or a run diverged (a diverged run has no accuracy to judge).
- diverges / no_divergence: every run / no run of the cells diverged.
- below / above: every value (per run, or an analysis's value) beyond `value`.
- higher / lower: differences a - b paired by seed; with at least 3 paired
  seeds the 95% paired t-interval of their mean must clear `margin`
  (confirmed) or lie wholly on the other side (contradicted); fewer seeds
  are inconclusive, whatever the gap (the reason says whether they agree).
- similar: the interval inside ±tolerance (default 1 point, or 10% of b).
- faster: per seed, tau = b's best validation accuracy on the curve, and the
  speedup = b's first step at tau / a's first step at tau (Ioffe & Szegedy
  2015's measure; 0 when a never reaches tau); judged like higher against 1.

A metric is a runs.csv column, `train_test_gap` (final train - final test
accuracy), or `<analysis>.<measure>`: a number another analysis of the study
publishes in its fragment's stats["measures"].
"""

from __future__ import annotations

import math

import pandas as pd

from bnlab.analyses.measures import name
from bnlab.analyses import evidence as ev
from bnlab.analyses.collect import read_runs
from bnlab.analyses.registry import FRAGMENT, Analysis, register, table
from bnlab.analyses.registry import fragment as make_fragment
from bnlab.analyses.speedup import best_accuracy, first_reach, val_curve
from bnlab.runfolder import read_json, write_json

RESULTS_JSON = "expectations.json"
VERDICTS = (ev.CONFIRMED, ev.CONTRADICTED, ev.INCONCLUSIVE)
GAP = "train_test_gap"
SIMILAR_TOLERANCE = 0.01
RELATIVE_TOLERANCE = 0.10  # "similar" for a metric other than an accuracy: within 10% of b's value
TEST_WORDS = {
    "chance": "at chance", "above_chance": "above chance", "higher": "a higher than b", "lower": "a lower than b",
    "similar": "a similar to b", "faster": "a faster than b", "diverges": "diverges",
    "no_divergence": "does not diverge", "below": "below a value", "above": "above a value",
}


def measure_source(metric: str) -> str | None:
    """The analysis an `<analysis>.<measure>` metric reads, None for a run-table column."""
    return metric.split(".", 1)[0] if "." in metric else None


def study_needs(study) -> tuple[str, ...]:
    """The run table (summary) of a training study, and the analyses whose measures its expectations read."""
    measured = (s for e in study.expect if (s := measure_source(e.get("metric", ""))) is not None)
    return tuple(dict.fromkeys((*(("summary",) if study.runs else ()), *measured)))


def is_accuracy(metric: str) -> bool:
    return metric == GAP or metric.endswith("_acc")


def fmt_value(metric: str, x) -> str:
    if not ev.finite(x):
        return "—"
    return f"{100 * x:.1f}%" if is_accuracy(metric) else f"{x:.3g}"


def fmt_diff(metric: str):
    """Formatter of a difference: accuracy points, or plain numbers."""
    if is_accuracy(metric):
        return lambda d: f"{100 * d:+.1f} points"
    return lambda d: f"{d:+.3g}"


# ---------------------------------------------------------------- values
class Values:
    """Reads a metric's values of a cell: {seed: value} from the run table or an analysis's measures."""

    def __init__(self, ctx, runs: pd.DataFrame, curves: pd.DataFrame | None = None):
        self.ctx, self.runs = ctx, runs.set_index("run_dir", drop=False)
        self.curves = curves if curves is not None else pd.DataFrame()
        self._measures: dict[str, dict] = {}

    def rows(self, partial: dict) -> pd.DataFrame:
        """The run-table rows of the study's runs matching a selector (every run for {})."""
        dirs = [r.relative_dir() for r in self.ctx.study.select(partial)]
        return self.runs.loc[[d for d in dirs if d in self.runs.index]]

    def measures(self, analysis: str) -> dict:
        if analysis not in self._measures:
            path = self.ctx.folder(analysis) / FRAGMENT
            self._measures[analysis] = read_json(path).get("stats", {}).get("measures", {}) if path.is_file() else {}
        return self._measures[analysis]

    def still_training(self, metric: str, partials: list[dict]) -> list[str]:
        """The cells' finished runs still training (evidence.still_training_runs); none for a measure of
        another analysis (not a final number)."""
        if measure_source(metric) is not None:
            return []
        return ev.still_training_runs(pd.concat([self.rows(p) for p in partials]), self.curves)

    def of(self, metric: str, partial: dict) -> tuple[dict, list[str]]:
        """({seed or None: value}, notes such as diverged runs); finished runs only for run metrics."""
        source = measure_source(metric)
        if source is not None:
            name = metric.split(".", 1)[1]
            entries = self.measures(source).get(name)
            if entries is None:
                known = ", ".join(sorted(self.measures(source))) or "none"
                raise ValueError(f"study '{self.ctx.study.name}': expectation metric '{metric}': analysis "
                                 f"'{source}' publishes no measure '{name}'; its measures: {known}")
            chosen = [e for e in entries if ev.matches(e["params"], partial) and ev.finite(e["value"])]
            values: dict = {}
            for e in chosen:  # several entries of one seed (e.g. per layer) are averaged
                values.setdefault(e["seed"], []).append(e["value"])
            return {s: sum(v) / len(v) for s, v in values.items()}, []
        rows = self.rows(partial)
        notes = []
        diverged = rows[rows.status != "ok"]
        if len(diverged):
            notes.append(f"{len(diverged)}/{len(rows)} run{'s' if len(rows) > 1 else ''} diverged")
        ok = rows[rows.status == "ok"]
        if metric == GAP:
            column = pd.to_numeric(ok["final_train_acc"], errors="coerce") - pd.to_numeric(ok["final_test_acc"],
                                                                                            errors="coerce")
        else:
            column = pd.to_numeric(ok[metric], errors="coerce")
        return {int(s): float(v) for s, v in zip(ok["seed"], column) if ev.finite(v)}, notes


# ---------------------------------------------------------------- the tests
def _cell_text(ctx, partial: dict) -> str:
    """The cell's label; a selector spanning several cells (an analysis's measure) in its own words."""
    runs = ctx.study.select(partial)
    labels = list(dict.fromkeys(ctx.study.label(r) for r in runs))
    if len(labels) == 1:
        return labels[0]
    words = ", ".join(f"{k}={v}" for k, v in partial.items())
    return f"{words} ({len(labels)} cells)" if labels else words


def _stated(ctx, partial: dict, values: dict) -> list[dict]:
    """What a verdict states per run, for the consistency check (bnlab.analyses.consistency): each value with
    its seed (None for a value over seeds) and the labels of the cells it may belong to."""
    cells = list(dict.fromkeys(ctx.study.label(r) for r in ctx.study.select(partial)))
    return [{"cells": cells, "seed": s, "value": x} for s, x in values.items()]


def _seeds_text(values: dict) -> str:
    if list(values) == [None]:
        return "one value"
    return f"{len(values)} seed{'s' if len(values) != 1 else ''}"


def _mean(values: dict) -> float | None:
    return sum(values.values()) / len(values) if values else None


def _one_value_wording(reason: str, values_a: dict, values_b: dict) -> str:
    """A measure computed over seeds (seed None) has one value, not one seed: say so."""
    if list(values_a) == [None] and list(values_b) == [None]:
        return reason.replace("one seed", "one value per cell (over seeds)")
    return reason


def _pair_values(va: dict, vb: dict) -> ev.Paired:
    """Pair by seed; a value over seeds (seed None) on either side pairs once with the other side's mean."""
    if None in va or None in vb:
        if not va or not vb:
            return ev.pair({}, {})
        return ev.Paired((0,), (va.get(None, _mean(va)),), (vb.get(None, _mean(vb)),))
    return ev.pair(va, vb)


def _scale_note(n_paired: int, study) -> str:
    """'; the quick scale runs 2 seeds per cell; the seed scale (3 seeds) decides it' below MIN_SEEDS."""
    if n_paired < ev.MIN_SEEDS and len(study.seeds) < ev.MIN_SEEDS:
        where = ev.where_decided(study)
        return f"; {where}" if where else ""
    return ""


def check_pair(exp: dict, values: Values) -> dict:
    metric, ctx = exp["metric"], values.ctx
    va, notes_a = values.of(metric, exp["a"])
    vb, notes_b = values.of(metric, exp["b"])
    fmt = fmt_diff(metric)
    observed = (f"a = {_cell_text(ctx, exp['a'])}: {fmt_value(metric, _mean(va))} ({_seeds_text(va)}); "
                f"b = {_cell_text(ctx, exp['b'])}: {fmt_value(metric, _mean(vb))} ({_seeds_text(vb)})")
    notes = [f"a: {n}" for n in notes_a] + [f"b: {n}" for n in notes_b]
    paired = _pair_values(va, vb)
    test = exp["test"]
    b_mean = _mean(vb)
    if test in ("higher", "lower"):
        verdict, reason = ev.judge_difference(paired, direction=1 if test == "higher" else -1,
                                              margin=float(exp.get("margin", 0.0)), fmt=fmt)
    else:  # similar
        tolerance = exp.get("tolerance")
        if tolerance is None:
            tolerance = SIMILAR_TOLERANCE if is_accuracy(metric) else RELATIVE_TOLERANCE * abs(b_mean or 0.0)
        verdict, reason = ev.judge_similar(paired, tolerance=tolerance, fmt=fmt)
    reason = _one_value_wording(reason, va, vb) + _scale_note(paired.n, ctx.study)
    if notes:
        reason += "; " + "; ".join(notes)
    return {"verdict": verdict, "reason": reason, "observed": observed,
            "values": _stated(ctx, exp["a"], va) + _stated(ctx, exp["b"], vb)}


def check_faster(exp: dict, values: Values, curves: pd.DataFrame) -> dict:
    """Per seed: speedup = b's first step at tau / a's first step at tau, tau = b's best validation accuracy."""
    ctx = values.ctx
    ra, rb = values.rows(exp["a"]), values.rows(exp["b"])
    speedups, notes, parts = {}, [], []
    for seed in sorted(set(ra.seed) & set(rb.seed)):
        a, b = ra[ra.seed == seed].iloc[0], rb[rb.seed == seed].iloc[0]
        if b.status != "ok":
            notes.append(f"seed {seed}: b diverged, no target")
            continue
        curve_a = val_curve(curves, a.label, seed, a.diverged_step)
        curve_b = val_curve(curves, b.label, seed, b.diverged_step)
        tau = best_accuracy(curve_b)
        t_a, _ = first_reach(curve_a, tau)
        t_b, _ = first_reach(curve_b, tau)
        if not ev.finite(tau) or not ev.finite(t_b) or t_b <= 0:
            notes.append(f"seed {seed}: b's best accuracy is at step 0, no speedup to measure")
            continue
        if not ev.finite(t_a):
            speedups[int(seed)] = 0.0
            parts.append(f"seed {seed}: a never reached {100 * tau:.1f}% (b: step {int(t_b)})")
        else:
            speedups[int(seed)] = t_b / t_a if t_a > 0 else math.inf
            parts.append(f"seed {seed}: {100 * tau:.1f}% at step {int(t_a)} vs {int(t_b)}")
    # the speedup tables' definition (bnlab.analyses.speedup): geometric mean and log-ratio interval over the
    # seeds where a reached the target; a seed where it never did has no ratio, and counts against the claim
    reached = {s: v for s, v in speedups.items() if 0 < v < math.inf}
    never = sorted(s for s, v in speedups.items() if v == 0)
    above = 1.0 + float(exp.get("margin", 0.0))
    if never and not reached and len(never) >= ev.MIN_SEEDS:
        verdict, reason = ev.CONTRADICTED, f"a never reached b's best in any of {len(never)} seeds"
    else:
        verdict, reason = ev.judge_ratio([reached[s] for s in sorted(reached)], above=above)
        reason = "speedup b/a: " + reason + _scale_note(len(reached), ctx.study)
        if never:
            reason += (f"; a never reached b's best in seed{'s' if len(never) > 1 else ''} "
                       f"{', '.join(map(str, never))}: no speedup there")
            verdict = ev.INCONCLUSIVE if verdict == ev.CONFIRMED else verdict
    observed = (f"a = {_cell_text(ctx, exp['a'])}, b = {_cell_text(ctx, exp['b'])}; tau = b's best val acc; "
                + "; ".join(parts))
    if notes:
        reason += "; " + "; ".join(notes)
    return {"verdict": verdict, "reason": reason, "observed": observed}


def _cells_values(exp: dict, values: Values) -> tuple[list[tuple[str, object, float]], list[str], list[dict]]:
    """(cell label, seed, value) of every finished run (or measure entry) of the expectation's cells, the
    notes (diverged runs) and what is stated per run (_stated)."""
    out, notes, stated = [], [], []
    for partial in exp["cells"] or [{}]:
        v, n = values.of(exp["metric"], partial)
        label = _cell_text(values.ctx, partial) if partial else ("every run" if values.ctx.study.runs else "value")
        out += [(label, s, x) for s, x in sorted(v.items(), key=lambda t: (t[0] is None, t[0] or 0))]
        notes += [f"{label}: {x}" for x in n]
        stated += _stated(values.ctx, partial, v)
    return out, notes, stated


def check_cells(exp: dict, values: Values) -> dict:
    test, metric, ctx = exp["test"], exp["metric"], values.ctx
    if test in ("diverges", "no_divergence"):
        rows = pd.concat([values.rows(p) for p in exp["cells"] or [{}]]).drop_duplicates("run_dir")
        flags = list(rows.status == "diverged")
        cells = "; ".join(_cell_text(ctx, p) for p in exp["cells"]) or "every run"
        diverged = [f"{r.label} seed {r.seed}" + (f" at step {int(r.diverged_step)}" if ev.finite(r.diverged_step)
                                                  else "") for r in rows.itertuples() if r.status == "diverged"]
        observed = (f"{cells}: {sum(flags)} of {len(flags)} run{'s' if len(flags) != 1 else ''} diverged"
                    + (f" ({'; '.join(diverged)})" if diverged else ""))
        if test == "diverges":
            verdict, reason = ev.judge_all(flags, what="diverged", none_what="finished")
        else:
            verdict, reason = ev.judge_all([not f for f in flags], what="finished", none_what="diverged")
        return {"verdict": verdict, "reason": reason, "observed": observed}
    items, notes, stated = _cells_values(exp, values)
    observed = "; ".join(f"{label}" + (f" seed {s}" if s is not None else "") + f": {fmt_value(metric, x)}"
                         for label, s, x in items) or "no finished run"
    unit = "value" if items and all(s is None for _, s, _ in items) else "run"
    if test in ("chance", "above_chance"):
        tol = float(exp.get("tolerance", ev.CHANCE_TOLERANCE))
        limit = min(ev.chance_limit(d, tol) for d in ctx.study.datasets)  # the most classes: the lowest chance
        chance = limit - tol
        at = [x <= limit for _, _, x in items]
        words = f"at most {100 * limit:.0f}% (chance {100 * chance:.0f}% + {100 * tol:.0f} points)"
        if test == "chance":
            verdict, reason = ev.judge_all(at, what=words, none_what=f"above {100 * limit:.0f}%")
        else:
            verdict, reason = ev.judge_all([not a for a in at], what=f"above {100 * limit:.0f}%", none_what=words)
    else:  # below / above
        value = float(exp["value"])
        below = [x < value for _, _, x in items]
        shown = fmt_value(metric, value)
        if test == "below":
            verdict, reason = ev.judge_all(below, what=f"below {shown}", none_what=f"at or above {shown}", unit=unit)
        else:
            verdict, reason = ev.judge_all([x > value for _, _, x in items], what=f"above {shown}",
                                           none_what=f"at or below {shown}", unit=unit)
    if notes:
        reason += "; " + "; ".join(notes)
        if verdict == ev.CONFIRMED:  # a diverged run has no number: the claim is not shown for every run
            verdict, reason = ev.INCONCLUSIVE, reason + " (no number to judge a diverged run by)"
    return {"verdict": verdict, "reason": reason, "observed": observed, "values": stated}


# Claims on final numbers: judged only on runs that finished training (evidence.still_training)
FINAL_NUMBER_TESTS = ("higher", "lower", "similar", "below", "above")


def _cells_of(exp: dict) -> list[dict]:
    """The selectors an expectation is about: a and b of a pair test, else its cells (every run for none)."""
    return [exp["a"], exp["b"]] if exp["test"] in ("higher", "lower", "similar") else (exp["cells"] or [{}])


def withhold_if_still_training(exp: dict, values: Values, result: dict) -> dict:
    """A verdict on the final numbers of runs still training is withheld: inconclusive, saying which runs rose
    how fast, and what the numbers would have said."""
    if exp["test"] not in FINAL_NUMBER_TESTS:
        return result
    rising = values.still_training(exp["metric"], _cells_of(exp))
    if not rising:
        return result
    if exp.get("budget"):  # a claim about the same epochs: a snapshot is what it is about; said, not withheld
        return {**result, "reason": result["reason"] + f"; a claim about a fixed budget, judged although "
                                                       f"{ev.still_training_words(rising)}"}
    reason = (f"still training: {ev.still_training_words(rising)}, so their final numbers are not those of "
              f"finished models; on these numbers: {result['verdict']} ({result['reason']})")
    return {**result, "verdict": ev.INCONCLUSIVE, "reason": reason}


def withhold_if_train_accuracy_has_dropout(exp: dict, values: Values, result: dict) -> dict:
    """A train-test gap of a run with dropout is not a finished model's: its train accuracy is the running
    mean in training mode, with dropout on, which lowers it by itself. Until bnlab measures train accuracy
    without dropout, such a verdict is withheld."""
    if exp["metric"] != GAP or exp["test"] not in FINAL_NUMBER_TESTS:
        return result
    with_dropout = [values.ctx.study.label(r) for p in _cells_of(exp) for r in values.ctx.study.select(p)
                    if r.dropout_in > 0 or r.dropout_hidden > 0]
    if not with_dropout:
        return result
    cells = ", ".join(dict.fromkeys(with_dropout))
    reason = (f"not a finished model's gap: the train accuracy of {cells} is measured in training mode, with "
              f"dropout on, which lowers it by itself; on these numbers: {result['verdict']} ({result['reason']})")
    return {**result, "verdict": ev.INCONCLUSIVE, "reason": reason}


def check(exp: dict, values: Values, curves: pd.DataFrame) -> dict:
    """One expectation's verdict, reason and observed numbers (plus the entry's own fields)."""
    test = exp["test"]
    if test == "faster":
        result = check_faster(exp, values, curves)
    elif test in ("higher", "lower", "similar"):
        result = withhold_if_train_accuracy_has_dropout(
            exp, values, withhold_if_still_training(exp, values, check_pair(exp, values)))
    else:
        result = withhold_if_still_training(exp, values, check_cells(exp, values))
    return {"claim": exp["claim"], "source": exp["source"], "test": test, "metric": exp["metric"], **result}


# ------------------------------------------------------- the registry entry
def compute(ctx) -> None:
    summary = ctx.folder("summary")
    study = ctx.study
    if study.runs:
        runs = read_runs(summary / "runs.csv", study.axes)
        curves = pd.read_parquet(summary / "curves.parquet")
    else:  # a study that trains nothing: only analysis measures to judge
        runs, curves = pd.DataFrame(columns=["run_dir", "status", "seed", "label"]), pd.DataFrame()
    values = Values(ctx, runs, curves)
    results = [check(exp, values, curves) for exp in study.expect]
    write_json(ctx.out / RESULTS_JSON, {"items": results})
    counts = {v: sum(r["verdict"] == v for r in results) for v in VERDICTS}
    print(f"{study.name}: {len(results)} expectations: " + ", ".join(f"{n} {v}" for v, n in counts.items()))


def fragment(ctx) -> dict:
    items = read_json(ctx.out / RESULTS_JSON)["items"]
    counts = {v: sum(r["verdict"] == v for r in items) for v in VERDICTS}
    rows = [[f"{r['claim']} ({r['source']})", TEST_WORDS[r["test"]] + f" ({r['metric']})", r["observed"],
             f"{r['verdict'].upper()}: {r['reason']}"] for r in items]
    caption = ("Expected vs observed: each claim of the literature or the seed, tested on this study's runs. "
               f"higher / lower / similar pair the cells' runs by seed; the verdict uses the 95% {ev.INTERVAL_METHOD} "
               f"of the mean paired difference, drawn only from at least {ev.MIN_SEEDS} paired seeds: with fewer "
               "the verdict is inconclusive and says whether the seeds agree. faster = Ioffe & Szegedy's speedup: b's first step "
               f"at b's {name('best_val_acc')} over a's, per seed; judged as the speedup tables state it, on the "
               "geometric mean over seeds and the same interval of the log ratios (above 1x: faster).")
    if any(r["metric"] == GAP for r in items):
        caption += (" train_test_gap = final train accuracy - final test accuracy, the train accuracy being the mean "
                    "over the last training batches in training mode: with dropout on, which by itself lowers it "
                    "for dropout runs, so part of a narrower gap is the measurement's.")
    tab = table(caption, ["expected (source)", "test (metric)", "observed", "verdict: why"], rows, text=True)
    # the counts lead the Discussion (bnlab.report.discussion); a finding names only what went against a claim
    findings = [f"Contradicted: {r['claim']} ({r['source']}): {r['reason']}." for r in items
                 if r["verdict"] == ev.CONTRADICTED]
    return make_fragment(tables=[tab], findings=findings,
                         stats={"expectations": {"counts": counts, "items": items}})


register(Analysis(
    name="expectations",
    description="the study's `expect:` claims checked against its runs: expected vs observed, each confirmed, "
                "contradicted or inconclusive with the reason (added to every study that has `expect:`)",
    compute=compute, fragment=fragment, trains=False, study_needs=study_needs))
