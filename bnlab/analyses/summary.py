"""Summary over seeds: mean and sd per grid cell, diverged runs counted, never dropped."""

from __future__ import annotations

import math

import pandas as pd

from bnlab.analyses.collect import collect_curves, collect_runs, read_runs
from bnlab.analyses.formats import fmt_loss, fmt_num, fmt_pct
from bnlab.analyses.registry import Analysis, register, table
from bnlab.analyses.registry import fragment as make_fragment
from bnlab.data import display_name
from bnlab.runfolder import HISTORY, METRICS, read_json

# (column in the run table, name in the summary)
SUMMARY_METRICS = (
    ("best_val_acc", "best_val_acc"),
    ("final_test_acc", "test_acc"),
    ("final_train_loss", "train_loss"),
    ("final_val_loss", "val_loss"),
    ("train_seconds", "train_seconds"),
)


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
        for column, name in SUMMARY_METRICS:
            values = pd.to_numeric(ok[column], errors="coerce").dropna()
            row[f"{name}_mean"] = values.mean() if len(values) else None
            row[f"{name}_sd"] = values.std(ddof=1) if len(values) > 1 else None
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
            f"Highest best validation accuracy: {best['label']} with {_with_sd(best[f'{metric}_mean'], best[f'{metric}_sd'])}"
            f" (mean over {n_ok} seed{'s' if n_ok != 1 else ''}), test accuracy {_pct(best['test_acc_mean'])}."
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
        for _, r in group[group.bn.astype(str) != baseline].iterrows():
            if not (_present(r[f"{metric}_mean"]) and _present(b[f"{metric}_mean"])):
                continue
            rows.append((setting, r["bn"], r[f"{metric}_mean"], b[f"{metric}_mean"]))
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
            f"{setting}: bn={bn} {'raised' if gap > 0 else 'lowered'} the best validation accuracy from "
            f"{_pct(without)} to {_pct(with_bn)} ({100 * gap:+.1f} points)."
        )
    if small:
        sentences.append(f"In {small} other setting{'s' if small > 1 else ''} BN changed the best validation "
                         f"accuracy by less than {100 * min_gap:.1f} points.")
    return sentences


# ------------------------------------------------------- the registry entry
# Files in results/studies/<study>/summary/
RUNS_CSV, SUMMARY_CSV, CURVES = "runs.csv", "summary.csv", "curves.parquet"


def compute(ctx) -> None:
    """Run table, summary over seeds and long curve data (the tables other analyses read)."""
    study = ctx.study
    runs = collect_runs(study, ctx.run_root)
    runs.to_csv(ctx.out / RUNS_CSV, index=False)
    summarize(runs, study.axes).to_csv(ctx.out / SUMMARY_CSV, index=False)
    curves = collect_curves(study, ctx.run_root)
    curves.to_parquet(ctx.out / CURVES, index=False)
    print(f"{study.name}: {len(runs)} runs, {int((runs.status == 'diverged').sum())} diverged")


def evaluation_note(runs) -> str:
    """Which images the summary's columns come from, in words, from the runs' eval_size."""
    sizes = sorted({r.eval_size for r in runs})
    if sizes == [0]:
        return "Every column is computed on the whole validation and test sets."
    subset = " or ".join(f"{n:,}" for n in sizes if n) + " validation images"
    return (f"Best val acc is the best curve point, each point on a fixed class-stratified subset of {subset} "
            "(run parameter eval_size, the same images for every run); test acc and val loss are the whole "
            "test and validation sets at the end.")


def summary_table(summary: pd.DataFrame, note: str = "") -> dict:
    """Header and formatted rows of the summary table (accuracies in %); `note` ends the caption."""

    header = ["setting", "runs", "diverged", "best val acc %", "test acc %", "train loss", "val loss", "train s"]
    rows, diverged = [], []
    for _, r in summary.iterrows():
        def pm(name, f=fmt_pct):
            mean, sd = r[f"{name}_mean"], r[f"{name}_sd"]
            if f(mean) == "":
                return "—"
            return f(mean) + (f" ± {f(sd)}" if f(sd) else "")
        rows.append([r["label"], str(int(r["n"])), r["diverged"], pm("best_val_acc"), pm("test_acc"),
                     pm("train_loss", fmt_loss), pm("val_loss", fmt_loss), fmt_num(r["train_seconds_mean"], 3)])
        diverged.append(int(r["n_diverged"]) > 0)
    caption = "Summary over seeds (mean ± sd of finished runs; accuracy in %)." + (f" {note}" if note else "")
    return table(caption, header, rows, diverged)


def references_table(study, runs: pd.DataFrame) -> dict | None:
    """Published numbers beside ours: our runs selected by each reference's `match`."""

    if not study.references:
        return None
    by_dir = runs.set_index("run_dir")
    rows = []
    for ref in study.references:
        chosen = [r for r in study.runs if all(r.as_strings().get(k) == v for k, v in ref["match"].items())]
        found = by_dir.loc[[r.relative_dir() for r in chosen]] if chosen else by_dir.iloc[:0]
        ok = pd.to_numeric(found[found.status == "ok"][ref["metric"]], errors="coerce").dropna()
        if len(ok):
            ours = fmt_pct(ok.mean()) + "%" + (f" ± {fmt_pct(ok.std(ddof=1))}" if len(ok) > 1 else "")
            ours += f" ({len(ok)} run{'s' if len(ok) > 1 else ''})"
        else:
            ours = "no finished matching run"
        setup = ", ".join(sorted({f"{display_name(r.dataset)}, {r.model}, {r.epochs} epochs"
                                  + (f", {r.train_subset} training images" if r.train_subset else "")
                                  for r in chosen})) or "—"
        rows.append([ref["what"], ref["published"], ref["source"], ours, setup])
    return table("Published numbers beside ours. Where our setup differs (dataset, epochs, subset), "
                 "the comparison is indicative only; the last column says what we ran.",
                 ["published setup", "published", "source", "ours", "our setup"], rows)


def picked_rates_findings(ctx) -> list[str]:
    """The numbers behind 'pick-<study>' rates, as the runs recorded them (metrics.json 'picked')."""

    used: dict[tuple, set] = {}
    for run in ctx.study.runs:
        if not run.picks:
            continue
        picked = read_json(ctx.run_dir(run) / METRICS).get("picked") or {}
        for param, p in picked.items():
            used.setdefault((p["study"], p["curve"]), set()).add((param, p["value"]))
    sentences = []
    for (source, curve), values in used.items():
        names = {"lr": "lr (lr_max)", "lr_min": "lr_min"}
        text = ", ".join(f"{names[param]} = {value:.3g}" for param, value in sorted(values))
        sentences.append(f"Rates written pick-{source} are those the {curve} LR range test of study '{source}' "
                         f"picked: {text}.")
    return sentences


def fragment(ctx) -> dict:

    study = ctx.study
    runs = read_runs(ctx.out / RUNS_CSV, study.axes)
    summary = pd.read_csv(ctx.out / SUMMARY_CSV, dtype={axis: str for axis in study.axes})
    tables = [summary_table(summary, evaluation_note(study.runs))]
    references = references_table(study, runs)
    if references:
        tables.append(references)
    first = read_json(ctx.run_dir(study.runs[0]) / METRICS)
    return make_fragment(
        tables=tables,
        findings=picked_rates_findings(ctx) + generic_findings(summary) + bn_comparison_findings(summary, study.axes),
        stats={"n_runs": len(runs), "n_diverged": int((runs.status == "diverged").sum()),
               "train_seconds": float(pd.to_numeric(runs.train_seconds, errors="coerce").sum()),
               "dataset_source": first.get("dataset_source", "")},
    )


register(Analysis(
    name="summary",
    description="run table, summary over seeds (mean ± sd, diverged runs counted), findings and published "
                "numbers beside ours; the tables every other analysis of a study reads",
    compute=compute, fragment=fragment, reads=(METRICS, HISTORY)))
