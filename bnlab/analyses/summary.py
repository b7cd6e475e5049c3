"""Summary over seeds: mean and sd per grid cell, diverged runs counted, never dropped.

A cell whose finished runs split into some that trained and some that stayed at
chance (evidence.chance_limit) is not summarised by a mean: 97% and 11% average
to a number no seed had. Its accuracies are given per seed, the chance ones
marked, and a sentence counts the outcomes.
"""

from __future__ import annotations

import math

import pandas as pd

from bnlab.analyses.collect import collect_curves, collect_runs, load_runs, read_runs, setting_name
from bnlab.analyses.evidence import binomial_se, chance_limit
from bnlab.analyses.formats import fmt_loss, fmt_num, fmt_pct
from bnlab.analyses.measures import MEASURES, facts_table, name
from bnlab.analyses.registry import Analysis, register, table
from bnlab.analyses.registry import fragment as make_fragment
from bnlab import search
from bnlab.data import display_name
from bnlab.runfolder import HISTORY, METRICS, read_json

# (column in the run table, name in the summary)
SUMMARY_METRICS = (
    ("best_val_acc", "best_val_acc"),
    ("final_train_acc", "train_acc"),
    ("final_test_acc", "test_acc"),
    ("final_train_loss", "train_loss"),
    ("final_val_loss", "val_loss"),
    ("final_test_loss", "test_loss"),
    ("train_seconds", "train_seconds"),
)


# accuracies given per seed in a split cell: (run-table column, summary name)
SPLIT_METRICS = (("best_val_acc", "best_val_acc"), ("final_train_acc", "train_acc"), ("final_test_acc", "test_acc"))


def at_chance(ok: pd.DataFrame) -> pd.Series:
    """Per finished run: its final test accuracy at most its dataset's chance_limit (it did not train)."""
    if "final_test_acc" not in ok or ok.empty:
        return pd.Series(False, index=ok.index)
    limits = (ok["dataset"].astype(str) if "dataset" in ok else pd.Series("", index=ok.index)).map(chance_limit)
    return pd.to_numeric(ok["final_test_acc"], errors="coerce") <= limits


def is_split(row) -> bool:
    """Some finished runs of the cell trained and some ended at chance."""
    n_ok = int(row["n"]) - int(row["n_diverged"])
    return 0 < int(row.get("n_chance", 0) or 0) < n_ok


def _finished(runs: pd.DataFrame, label: str) -> pd.DataFrame:
    return runs[(runs.label == label) & (runs.status == "ok")].sort_values("seed")


def split_text(cell: pd.DataFrame, column: str) -> str:
    """'96.6, 97.3; 11.4 (ended at chance)': a cell's finished runs, those that trained, then those that ended
    at chance by their final test accuracy (in %). In another column a run that ended at chance may show a high
    value (a best validation accuracy it reached before it collapsed): the marker says which run it is."""
    stuck = at_chance(cell)
    values = pd.to_numeric(cell[column], errors="coerce")
    trained = ", ".join(f"{100 * v:.1f}" for v in values[~stuck].dropna())
    chance = ", ".join(f"{100 * v:.1f}" for v in values[stuck].dropna())
    return f"{trained}; {chance} (ended at chance)"


def split_findings(summary: pd.DataFrame, runs: pd.DataFrame) -> list[str]:
    """A sentence per split cell: how many seeds trained (their test accuracies) and how many did not."""
    sentences = []
    for _, r in summary.iterrows():
        if not is_split(r):
            continue
        cell = _finished(runs, r["label"])
        stuck = at_chance(cell)
        trained = pd.to_numeric(cell.final_test_acc, errors="coerce")[~stuck]
        seeds = sorted(int(s) for s in cell.seed[stuck])
        sentences.append(
            f"{r['label']}: the seeds split, {len(trained)} of {len(cell)} trained (test accuracy "
            f"{', '.join(_pct(v) for v in trained)}) and {len(seeds)} ended at chance "
            f"(seed{'s' if len(seeds) != 1 else ''} {', '.join(map(str, seeds))}); its means are not "
            "a result of either kind.")
    return sentences


def summarize(runs: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """One row per label (grid cell): n runs, diverged count, mean/sd of each metric.

    Means are over runs that finished ("ok"); a cell whose runs all diverged
    has empty means and says so in `diverged` (e.g. "2/2"), so a reader sees
    the divergence rather than a missing row.
    """
    rows = []
    for label, group in runs.groupby("label", sort=False):
        ok = group[group.status == "ok"]
        n, n_div = len(group), int((group.status == "diverged").sum())
        row = {"label": label, **{a: group.iloc[0][a] for a in axes}, "n": n, "n_diverged": n_div,
               "diverged": f"{n_div}/{n}"}
        for column, short in SUMMARY_METRICS:
            # a run table from older run folders may lack a column: its cells stay empty
            values = pd.to_numeric(ok[column], errors="coerce").dropna() if column in ok else pd.Series(dtype=float)
            row[f"{short}_mean"] = values.mean() if len(values) else None
            row[f"{short}_sd"] = values.std(ddof=1) if len(values) > 1 else None
        row["n_chance"] = int(at_chance(ok).sum())
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------- findings
# Nothing here states a number the data did not produce: every sentence is
# built from the summary rows it is given.


def _pct(x) -> str:
    return f"{100 * x:.1f}%"


def _present(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def _with_sd(mean, sd) -> str:
    return _pct(mean) + (f" ± {100 * sd:.1f}" if _present(sd) else "")


def generic_findings(summary: pd.DataFrame, metric: str = "best_val_acc") -> list[str]:
    """Best and worst cell by mean `metric`, their gap, and the diverged cells."""
    sentences: list[str] = []
    ranked = summary[summary[f"{metric}_mean"].apply(_present)].sort_values(f"{metric}_mean", ascending=False)
    if len(ranked):
        best = ranked.iloc[0]
        n_ok = int(best["n"] - best["n_diverged"])
        sentences.append(
            f"Highest {name(metric)}: {best['label']} with {_with_sd(best[f'{metric}_mean'], best[f'{metric}_sd'])}"
            f" (mean over {n_ok} seed{'s' if n_ok != 1 else ''}), {name('final_test_acc')} "
            f"{_pct(best['test_acc_mean'])}."
        )
    if len(ranked) > 1:
        worst = ranked.iloc[-1]
        gap = ranked.iloc[0][f"{metric}_mean"] - worst[f"{metric}_mean"]
        sentences.append(
            f"Lowest: {worst['label']} with {_pct(worst[f'{metric}_mean'])}, "
            f"{100 * gap:.1f} percentage points below the best."
        )
    diverged = summary[summary["n_diverged"] > 0]
    for _, row in diverged.iterrows():
        sentences.append(f"{row['label']} diverged in {row['diverged']} runs (non-finite training loss).")
    if diverged.empty:
        sentences.append("No run diverged.")
    return sentences


def bn_comparison_findings(summary: pd.DataFrame, axes: list[str], baseline: str = "none",
                           metric: str = "best_val_acc", min_gap: float = 0.005) -> list[str]:
    """Per setting (the non-BN axes), BN vs no BN on mean `metric`, largest gaps first.

    Settings where the two differ by less than `min_gap` are summarised in one
    sentence rather than listed, so the findings stay readable.
    """
    if "bn" not in axes:
        return []
    others = [a for a in axes if a != "bn"]
    frame = summary.copy()
    frame["setting"] = frame.apply(
        lambda r: ", ".join(f"{a}={r[a]}" for a in others if str(r[a]) != "na") or "all runs", axis=1)
    rows = []
    for setting, group in frame.groupby("setting", sort=False):
        base = group[group.bn.astype(str) == baseline]
        if base.empty:
            continue
        b = base.iloc[0]
        called = setting_name(setting, b.get("label"))  # 'CNN, lr=0.5' where the study names its cells
        for _, r in group[group.bn.astype(str) != baseline].iterrows():
            if not (_present(r[f"{metric}_mean"]) and _present(b[f"{metric}_mean"])):
                continue
            rows.append((called, r["bn"], r[f"{metric}_mean"], b[f"{metric}_mean"]))
    if not rows:
        return []
    rows.sort(key=lambda t: -abs(t[2] - t[3]))
    sentences, small = [], 0
    for setting, bn, with_bn, without in rows:
        gap = with_bn - without
        if abs(gap) < min_gap:
            small += 1
            continue
        sentences.append(
            f"{setting}: bn={bn} {'raised' if gap > 0 else 'lowered'} the {name(metric)} from "
            f"{_pct(without)} to {_pct(with_bn)} ({100 * gap:+.1f} points)."
        )
    if small:
        sentences.append(f"In {small} other setting{'s' if small > 1 else ''} BN changed the "
                         f"{name(metric)} by less than {100 * min_gap:.1f} points.")
    return sentences


# ------------------------------------------------------- the registry entry
# Files in results/studies/<study>/summary/
RUNS_CSV, SUMMARY_CSV, CURVES, FACTS_CSV = "runs.csv", "summary.csv", "curves.parquet", "facts.csv"


def compute(ctx) -> None:
    """Run table, summary over seeds and long curve data (the tables other analyses read)."""
    study = ctx.study
    loaded = load_runs(study, ctx.run_root)  # each run folder read once for the run table and the curves
    runs = collect_runs(study, ctx.run_root, loaded)
    runs.to_csv(ctx.out / RUNS_CSV, index=False)
    summarize(runs, study.axes).to_csv(ctx.out / SUMMARY_CSV, index=False)
    facts_table(runs).to_csv(ctx.out / FACTS_CSV, index=False)  # every measure of every run, with its definition
    curves = collect_curves(study, ctx.run_root, loaded)
    curves.to_parquet(ctx.out / CURVES, index=False)
    print(f"{study.name}: {len(runs)} runs, {int((runs.status == 'diverged').sum())} diverged")


def evaluation_note(runs) -> str:
    """Which images the summary's columns come from, in words, from the runs' eval_size."""
    sizes = sorted({r.eval_size for r in runs})
    if sizes == [0]:
        return "Every column is computed on the whole validation and test sets."
    subset = " or ".join(f"{n:,}" for n in sizes if n) + " validation images"
    return (f"Best val acc is the best curve point, each point on a fixed class-stratified subset of {subset} "
            "(run parameter eval_size, the same images for every run); test acc, val loss and test loss are the "
            "whole test and validation sets at the end.")


# Short headers keep the nine columns on an A4 page; the caption spells them out.
SUMMARY_HEADER = ["setting", "diverged/runs"] + [MEASURES[column].short for column, _ in SUMMARY_METRICS]


def summary_table(summary: pd.DataFrame, note: str = "", runs: pd.DataFrame | None = None) -> dict:
    """Header and formatted rows of the summary table (accuracies in %); `note` ends the caption.

    Train and test accuracy and loss side by side (seed 003 problem 1.3 compares them); train acc and
    train loss are the last curve point's, i.e. the mean over the training batches since the previous
    evaluation, in training mode (dropout on).
    """
    rows, diverged = [], []
    for _, r in summary.iterrows():
        def pm(name, f=fmt_pct):
            column = next((c for c, n in SPLIT_METRICS if n == name), None)
            if runs is not None and column and is_split(r):
                return split_text(_finished(runs, r["label"]), column)  # a mean of both kinds is neither
            mean, sd = r.get(f"{name}_mean"), r.get(f"{name}_sd")
            if f(mean) == "":
                return "—"
            # non-breaking spaces: "82.1 ± 0.6" stays on one line of a narrow column
            return f(mean) + (f"\u00a0±\u00a0{f(sd)}" if f(sd) else "")
        def mean(name, f=fmt_loss):  # losses: the mean alone keeps nine columns on the page (sd in summary.csv)
            return f(r.get(f"{name}_mean")) or "—"
        rows.append([r["label"], r["diverged"], pm("best_val_acc"), pm("train_acc"), pm("test_acc"),
                     mean("train_loss"), mean("val_loss"), mean("test_loss"), fmt_num(r["train_seconds_mean"], 3)])
        diverged.append(int(r["n_diverged"]) > 0)
    caption = ("Summary over seeds (accuracies: mean ± sd of finished runs, in %; losses and train s: means; "
               "diverged/runs counts the runs whose loss became non-finite; train acc and train loss are over the "
               "training batches since the last evaluation, in training mode; train s = training seconds, timed while "
               "other jobs shared the machine: a cost of this run, not a comparison of methods). Where some "
               "seeds of a setting trained and others ended at chance (final test accuracy at most 1/classes + 5 "
               "points), its accuracies are per seed, trained first, then those that ended at chance, marked: a "
               "mean would be neither."
               + (f" {note}" if note else ""))
    return table(caption, header=SUMMARY_HEADER, rows=rows, diverged=diverged)


# ------------------------------------------------------- published numbers
# Units of a reference's metric: accuracies are fractions (shown in %), times seconds, losses plain.
_SECONDS_METRICS = ("train_seconds",)
_LOSS_METRICS = ("final_train_loss", "final_val_loss", "final_test_loss")


def metric_text(metric: str, x) -> str:
    """A value of `metric` as the reference table shows it: '99.16%' (two decimals, as the seeds print
    their accuracies), '7.76 s', '0.345'."""
    if metric in _SECONDS_METRICS:
        return f"{fmt_num(x, 3)} s"
    if metric in _LOSS_METRICS:
        return fmt_loss(x)
    return f"{100 * x:.2f}%"


# Why a published number is not scored (reference_verdict's "why_not_scored"; the title page counts them):
NOT_COMPARABLE = "setting"      # our runs at this scale differ from the published setup (dataset, epochs, ...)
DIFFERENT = "different"         # a difference at every scale: another network, an unknown measure
NO_BAND, NO_RUN = "no band", "no run"


def _gap_text(metric: str, ours: float, band: list[float]) -> str:
    """How far outside its band our number is: '1.3 points below', '0.42 s above'."""
    gap = band[0] - ours if ours < band[0] else ours - band[1]
    side = "below" if ours < band[0] else "above"
    if metric in _SECONDS_METRICS:
        return f"{fmt_num(gap, 3)} s {side}"
    if metric in _LOSS_METRICS:
        return f"{fmt_loss(gap)} {side}"
    return f"{100 * gap:.2f} points {side}"


def reference_verdict(ref: dict, values: list[float], setting_gaps: list[str], chance: float | None = None) -> dict:
    """Score one reference: reproduced (inside its band) or missed (outside), or not scored and why.

    A number is scored where the reference gives a band, names no difference that holds at every scale
    (`differs`), and every matching run of ours has the published setup's parameters (`setting_gaps`
    lists where they do not: 'Fashion-MNIST (published: MNIST)'). Our value is the median over the
    finished matching runs (seeds), so one run that failed to train does not decide it alone; the table
    lists every run's value. Where `chance` is given (an accuracy) and the seeds split between trained and
    at chance, the reason says so, with the trained seeds' place against the band. Returns {"what",
    "verdict": "inside" | "outside" | "not scored", "ours", "band", "reason", "why_not_scored", "metric", "published", "source", "n_runs", "gap"}.
    """
    metric = ref.get("metric", "final_test_acc")
    band = [float(b) for b in ref["band"]] if ref.get("band") else None
    if band and band[0] > band[1]:
        raise ValueError(f"reference {ref['what']!r}: band {band} has its low end above its high end")
    ours = float(pd.Series(values).median()) if values else None
    why, gap = None, None
    if ours is None:
        verdict, reason, why = "not scored", "no finished matching run", NO_RUN
    elif (ref.get("differs") or "").strip():
        verdict, reason, why = "not scored", ref["differs"].strip(), DIFFERENT
    elif setting_gaps:
        verdict, why = "not scored", NOT_COMPARABLE
        reason = "our setting here is not the published one: " + "; ".join(setting_gaps)
    elif not band:
        verdict, reason, why = "not scored", "no band is given for the published number", NO_BAND
    else:
        verdict = "inside" if band[0] <= ours <= band[1] else "outside"
        span = f"{metric_text(metric, band[0])} to {metric_text(metric, band[1])}"
        if verdict == "inside":
            reason = f"ours {metric_text(metric, ours)} is inside the band {span}"
        else:
            gap = _gap_text(metric, ours, band)
            reason = f"ours {metric_text(metric, ours)} is {gap} the band {span}"
    if band and chance is not None and verdict in ("inside", "outside"):
        trained = [v for v in values if v > chance]
        if 0 < len(trained) < len(values):
            inside = sum(band[0] <= v <= band[1] for v in trained)
            reason += (f"; the seeds split: {len(trained)} of {len(values)} trained "
                       f"({', '.join(metric_text(metric, v) for v in trained)}; {inside} inside the band), "
                       f"{len(values) - len(trained)} ended at chance")
    caveat = (ref.get("caveat") or "").strip() if verdict == "outside" else ""  # what may explain a miss
    return {"what": ref["what"], "verdict": verdict, "why_not_scored": why, "ours": ours, "band": band,
            "reason": reason, "gap": gap, "caveat": caveat, "metric": metric, "published": ref["published"],
            "source": ref["source"], "n_runs": len(values)}


def reference_rows(study, runs: pd.DataFrame) -> list[dict]:
    """Per reference of the study: our values (runs selected by its `match`), our setup, its verdict."""
    from bnlab.setting import differences

    by_dir = runs.set_index("run_dir")
    out = []
    for ref in study.references:
        metric = ref.get("metric", "final_test_acc")
        chosen = [r for r in study.runs if all(r.as_strings().get(k) == v for k, v in ref["match"].items())]
        found = by_dir.loc[[r.relative_dir() for r in chosen]] if chosen else by_dir.iloc[:0]
        column = found[found.status == "ok"][metric] if metric in found else pd.Series(dtype=float)
        values = [float(v) for v in pd.to_numeric(column, errors="coerce").dropna()]
        setup = ", ".join(sorted({f"{display_name(r.dataset)}, {r.model}, {r.epochs} epochs"
                                  + (f", {r.train_subset} training images" if r.train_subset else "")
                                  for r in chosen})) or "—"
        setup_of_ref = ref.get("setup") or {}
        gaps = differences({p: [r.as_strings()[p] for r in chosen] for p in setup_of_ref}, setup_of_ref,
                           "published")
        chance = (max(chance_limit(r.dataset) for r in chosen)
                  if chosen and metric.endswith("_acc") else None)
        out.append({"ref": ref, "values": values, "setup": setup,
                    "verdict": reference_verdict(ref, values, gaps, chance)})
    return out


def _verdict_cells(verdicts: list[dict]) -> tuple[list[str], list[str]]:
    """The verdict column, and notes for what several rows share (said once, under the table): the
    reasons of numbers not scored, and what may explain a miss (the source's unstated settings)."""
    texts = [v["reason"] for v in verdicts if v["verdict"] == "not scored"] + [v["caveat"] for v in verdicts if v.get("caveat")]
    shared = list(dict.fromkeys(t for t in texts if texts.count(t) > 1))
    marks = {text: chr(ord("a") + i) if i < 26 else str(i + 1) for i, text in enumerate(shared)}
    cells = []
    for v in verdicts:
        if v["verdict"] == "not scored":
            cells.append(f"not scored: see note ({marks[v['reason']]})" if v["reason"] in marks
                         else f"not scored: {v['reason']}")
        elif v.get("caveat"):
            what = f"note ({marks[v['caveat']]})" if v["caveat"] in marks else v["caveat"]
            cells.append(f"{v['reason']}; what may differ: {what}")
        else:
            cells.append(v["reason"])
    return cells, [f"({marks[t]}) {t[0].upper() + t[1:]}." for t in shared]


def _ours_cell(values: list[float], metric: str) -> str:
    """Our median and every run's value: '97.2% (median of 3: 97.0, 97.2, 97.5)'."""
    if not values:
        return "no finished matching run"
    median = metric_text(metric, pd.Series(values).median())
    if len(values) == 1:
        return f"{median} (1 run)"
    each = ", ".join(metric_text(metric, v).removesuffix("%").removesuffix(" s") for v in sorted(values))
    return f"{median} (median of {len(values)}: {each})"


def _notes_used(notes: list[str], cells: list[str]) -> list[str]:
    """The shared notes ('(a) ...') that some of these verdict cells point to ('see note (a)', 'note (a)')."""
    return [n for n in notes if any(f"note {n.split(' ', 1)[0]}" in c for c in cells)]


def references_tables(items: list[dict]) -> list[dict]:
    """Published numbers beside ours (reference_rows' items), in two tables: those scored (inside or outside
    their band, with our setup) and, compactly, those not scored here with why (context, not evidence)."""
    if not items:
        return []
    verdicts, notes = _verdict_cells([item["verdict"] for item in items])
    scored = [i for i, item in enumerate(items) if item["verdict"]["verdict"] in ("inside", "outside")]
    others = [i for i in range(len(items)) if i not in scored]
    tables = []
    if scored:
        # why each band is as wide as it is, said once per distinct reason
        band_reasons = list(dict.fromkeys((items[i]["ref"].get("band_reason") or "").strip() for i in scored))
        rows = [[items[i]["ref"]["what"], items[i]["ref"]["published"], items[i]["ref"]["source"],
                 _ours_cell(items[i]["values"], items[i]["verdict"]["metric"]), items[i]["setup"], verdicts[i]]
                for i in scored]
        caption = ("Published numbers scored against ours: reproduced where ours lies inside the band, missed "
                   "where not. A number is scored only where our matching runs have the published setup (dataset, "
                   "epochs, training images) and nothing else known makes them incomparable. Ours is the median "
                   "over seeds, each run's value after it.")
        caveats = _notes_used(notes, [verdicts[i] for i in scored])
        tables.append(table(caption, ["published setup", "published", "source", "ours", "our setup", "verdict"],
                            rows, text=True, notes=[f"Band: {r[0].upper() + r[1:]}." for r in band_reasons if r]
                            + caveats))
    if others:
        rows = [[items[i]["ref"]["what"], items[i]["ref"]["published"], items[i]["ref"]["source"],
                 _ours_cell(items[i]["values"], items[i]["verdict"]["metric"]),
                 verdicts[i].removeprefix("not scored: ")] for i in others]
        shared = _notes_used(notes, [verdicts[i] for i in others])
        caption = ("Published numbers not scored here, for context: our runs' setup is not the published one, "
                   "no band is given, or nothing of ours matches.")
        tables.append(table(caption, ["published setup", "published", "source", "ours", "why not scored"], rows,
                            text=True, notes=shared))
    return tables


def references_findings(verdicts: list[dict]) -> list[str]:
    """One sentence counting the verdicts, and one per scored reference; nothing when none was scored."""
    if not verdicts:
        return []
    counts = {k: sum(v["verdict"] == k for v in verdicts) for k in ("inside", "outside", "not scored")}
    if not counts["inside"] and not counts["outside"]:  # nothing scored: the table and the Discussion say why
        return []
    sentences = [f"Published numbers: {counts['inside']} reproduced (inside their band), {counts['outside']} "
                 f"missed (outside), {counts['not scored']} not scored (a setup not the same as ours, no band, "
                 "or no finished run)."]
    for v in verdicts:
        if v["verdict"] != "not scored":
            sentences.append(f"{v['what']} ({v['source']}): {v['reason']}.")
    return sentences


def picked_values(ctx) -> tuple[dict, dict]:
    """What the runs recorded of their picked values (metrics.json 'picked'): the rates of each LR range test
    {(study, curve): {(param, value)}} and the search records {(param, study, kind): [record + what it reached]}."""
    used: dict[tuple, set] = {}
    searched: dict[tuple, list] = {}
    for run in ctx.study.runs:
        if not run.picks and not run.searches:
            continue
        metrics = read_json(ctx.run_dir(run) / METRICS)
        for param, p in (metrics.get("picked") or {}).items():
            if "curve" in p:
                used.setdefault((p["study"], p["curve"]), set()).add((param, p["value"]))
            else:  # a search stage (bnlab/search.py), with what the run reached
                searched.setdefault((param, p["study"], p["kind"]), []).append(
                    {**p, "reached": metrics.get("final_val_acc") if metrics.get("status") == "ok" else None,
                     "val_images": (metrics.get("eval_images") or {}).get("val_full", 0)})
    return used, searched


def search_stage_answers(searched: dict) -> list[str]:
    """A stage of draws near an earlier stage's best answers whether it found a better value: its best mean
    final validation accuracy against the earlier best (both on the whole validation split), judged against
    two binomial standard errors of one run's accuracy, the noise the search's own table uses."""
    answers = []
    for (param, source, kind), records in searched.items():
        if kind != "draw":
            continue
        by_value: dict[float, list[float]] = {}
        for r in records:
            if r["reached"] is not None:
                by_value.setdefault(r["value"], []).append(r["reached"])
        if not by_value:
            answers.append(f"Does drawing near the best of '{source}' find a better {param}? No run of this stage "
                           "finished, so it cannot say.")
            continue
        value, runs = max(by_value.items(), key=lambda item: sum(item[1]) / len(item[1]))
        ours, theirs, n = sum(runs) / len(runs), records[0]["best_final_val_acc"], records[0]["val_images"]
        gain, se = ours - theirs, math.hypot(binomial_se(ours, n), binomial_se(theirs, n))
        verdict = ("yes: beyond two standard errors" if gain > 2 * se else
                   "no: within two standard errors, so the draws found nothing the earlier stage had not"
                   if abs(gain) <= 2 * se else "no: lower by more than two standard errors")
        answers.append(f"Does drawing near the best of '{source}' find a better {param}? The best of the "
                       f"{len(records)} draws, {param} = {value:.3g}, reached {_pct(ours)} {name('final_val_acc')} "
                       f"against {_pct(theirs)} at the best {param} of '{source}', {records[0]['best']:.3g}: "
                       f"{100 * gain:+.1f} points, {verdict} (±{200 * se:.1f} points on {n:,} images).")
    return answers


def picked_rates_findings(used: dict, searched: dict) -> list[str]:
    """The numbers behind 'pick-<study>' rates and searched values, as the runs recorded them."""
    sentences = []
    for (param, source, kind), records in searched.items():
        first = records[0]
        if kind == "best":
            sentences.append(f"{param} = {first['value']:.3g} is the value whose runs in "
                             f"study '{source}' reached the highest final validation accuracy, "
                             f"{first['best_final_val_acc']:.2%}.")
        else:
            lo, hi = first["range"]
            values = ", ".join(f"{r['value']:.3g}" for r in sorted(records, key=lambda r: r["draw"]))
            sentences.append(f"The {len(records)} values of {param} are seeded uniform "
                             f"draws (generator seed {first['draw_seed']}) on [{lo:.3g}, {hi:.3g}], the grid "
                             f"neighbours of study '{source}''s best value {first['best']:.3g}: {values}.")
    for (source, curve), values in used.items():
        names = {"lr": "lr (lr_max)", "lr_min": "lr_min"}
        text = ", ".join(f"{names[param]} = {value:.3g}" for param, value in sorted(values))
        sentences.append(f"Rates written pick-{source} are those the {curve} LR range test of study '{source}' "
                         f"picked: {text}.")
    return sentences


def plan_params(plan, study) -> dict:
    """The later stages of a search that go on from this study's runs: {param: [study, ...]} (bnlab.search)."""
    return {"search_next": search.next_stages(plan.studies, study.name)}


def search_source_findings(ctx) -> list[str]:
    """For a study a later search stage goes on from: the value it carries forward, by the search's own measure
    (bnlab.search.METRIC), so that this section and the next stage name the same best value."""
    later_stages = ctx.extra.get("search_next", {})
    if not later_stages:
        return []
    table = search.candidates(ctx.study.runs, ctx.run_root)
    sentences = []
    for param, later in later_stages.items():
        try:
            found = search.best(table, param)
        except ValueError as err:  # no run finished: the next stage cannot start either
            sentences.append(f"The search cannot go on from this study: {err}.")
            continue
        stages = ", ".join(f"'{name}'" for name in later)
        sentences.append(
            f"The search goes on from {param} = {found['value']:.3g}: its runs reached the highest "
            f"{name(search.METRIC)}, {_pct(found['score'])}, the measure the search ranks by; the next "
            f"stage{'s' if len(later) > 1 else ''} ({stages}) start{'' if len(later) > 1 else 's'} from it. "
            f"The ranking below is by another measure, the {name('best_val_acc')}.")
    return sentences


def fragment(ctx) -> dict:

    study = ctx.study
    runs = read_runs(ctx.out / RUNS_CSV, study.axes)
    summary = pd.read_csv(ctx.out / SUMMARY_CSV, dtype={axis: str for axis in study.axes})
    items = reference_rows(study, runs)
    tables = [summary_table(summary, evaluation_note(study.runs), runs), *references_tables(items)]
    verdicts = [item["verdict"] for item in items]
    first = read_json(ctx.run_dir(study.runs[0]) / METRICS)
    used, searched = picked_values(ctx)
    return make_fragment(
        tables=tables,
        findings=(picked_rates_findings(used, searched) + search_source_findings(ctx) + generic_findings(summary) + split_findings(summary, runs)
                  + bn_comparison_findings(summary, study.axes)
                  + references_findings(verdicts)),
        stats={"n_runs": len(runs), "n_diverged": int((runs.status == "diverged").sum()),
               "train_seconds": float(pd.to_numeric(runs.train_seconds, errors="coerce").sum()),
               "dataset_source": first.get("dataset_source", ""),
               # [{"what", "verdict": "inside" | "outside" | "not scored", "ours", "band", "reason", ...}]
               "references": verdicts, "answers": search_stage_answers(searched)},
        data=[{"file": RUNS_CSV, "caption": "One row per run: its setting, seed and status (ok or diverged), steps and "
               "training seconds, and its best and final accuracies and losses (accuracies as fractions) on the "
               "training, validation and test sets."},
              {"file": FACTS_CSV, "caption": "The study's facts: one row per measure and run, the measure's name "
               "and definition (split, images, point of training) beside the run's cell, seed, status and value; "
               "every number the section states for a run's measure is one of these or their mean."},
              {"file": SUMMARY_CSV, "caption": "One row per setting: its runs, how many diverged, and the mean "
               "and sd over the finished runs (seeds) of each accuracy and loss (accuracies as fractions); "
               "n_chance counts runs that ended at chance."}],
    )


register(Analysis(
    name="summary",
    description="run table, summary over seeds (mean ± sd, diverged runs counted), findings and published "
                "numbers beside ours; the tables every other analysis of a study reads",
    compute=compute, fragment=fragment, reads=(METRICS, HISTORY), plan_params=plan_params))
