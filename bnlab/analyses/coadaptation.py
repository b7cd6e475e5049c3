"""Co-adaptation proxy per hidden layer, dropout vs none (Hinton et al. 2012; Srivastava et al. 2014).

Input: the run folders' coadaptation.json (bnlab/train/coadapt.py: per hidden
layer, the mean absolute Pearson correlation between pairs of its units'
activations on the fixed validation subset, eval mode, written with coadapt:
true). Per setting and layer the mean over seeds; cells that differ only in
dropout_in / dropout_hidden are compared layer by layer, and every sentence's
direction comes from those numbers.

Measure (stats["measures"], bnlab.analyses.evidence): "mean_abs_corr", per run
with the proxy, the mean over its hidden layers (those with a finite proxy) of
the layer's mean |corr| (params: the run's parameters but its seed; seed: the
run's); in coadapt_runs.csv. The fragment's "background" explains
co-adaptation and the proxy, with this study's numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bnlab.analyses.collect import scan_run_files, setting_without
from bnlab.analyses.evidence import measure
from bnlab.analyses.formats import fmt_num, short_layer
from bnlab.analyses.registry import Analysis, figure, fragment, register, table
from bnlab.runfolder import COADAPTATION, METRICS, read_json, write_json

DROPOUT_AXES = ("dropout_in", "dropout_hidden")
ROWS, LAYERS_CSV, PAIRS_CSV, RUNS_CSV, INFO_JSON, FIGURE_PNG = "coadapt_rows.csv", "coadapt_layers.csv", \
    "coadapt_pairs.csv", "coadapt_runs.csv", "coadapt_info.json", "coadaptation.png"
ROW_COLUMNS = ["label", "seed", "status", "setting", "dropout", "layer_index", "layer", "kind", "units",
               "dead_units", "nonfinite_units", "live_units", "mean_abs_corr"]
LAYER_COLUMNS = ["label", "setting", "dropout", "layer_index", "layer", "kind", "units", "runs", "seeds",
                 "diverged", "dead_units", "mean", "min", "max"]
PAIR_COLUMNS = ["setting", "dropout_label", "no_dropout_label", "dropout", "layer_index", "layer", "with_dropout",
                "without_dropout", "change", "relative_change", "seeds_lower", "seeds_higher", "seeds_compared"]
RUN_COLUMNS = ["label", "seed", "setting", "dropout", "layers", "mean_abs_corr"]

SOURCE = "Seed 003, problem 1.1"
NOTION = (
    "Hinton et al. 2012 and Srivastava et al. 2014 call co-adaptation the way hidden units trained together come "
    "to rely on particular other units being present: a unit learns to correct the mistakes of specific partners "
    "instead of detecting something useful on its own, so features work only jointly, fit the training data and "
    "generalise poorly. Dropout removes every unit at random in each training case, so no unit can count on a "
    "particular partner and each has to be useful together with many random subsets of the others; Srivastava et "
    "al. show that features learned with dropout are sparser and more distinct.")
PROXY = (
    "Co-adaptation has no single measure. bnlab's proxy is how redundant a layer's units are: the mean absolute "
    "Pearson correlation between the activations of pairs of distinct units of one hidden layer (the output of "
    "its nonlinearity), over the {images} images of the fixed validation subset, with the trained model in eval "
    "mode (no dropout masks, BN on its running statistics); a conv layer's unit is a channel, its activation per "
    "image the channel's spatial mean. Units with the same value on every image (dead) have no correlation: they "
    "are left out and counted. The proxy can move either way under dropout: less reliance on particular partners "
    "lowers it, redundant copies of a feature (so that losing one unit does not matter) raise it.")


# ---------------------------------------------------------------- reading
def _dropout_text(spec) -> str:
    parts = [f"{a}={getattr(spec, a):g}" for a in DROPOUT_AXES if getattr(spec, a) > 0]
    return ", ".join(parts) or "no dropout"


def read_coadaptation(study, run_dir) -> tuple[pd.DataFrame, dict]:
    """Every layer of every run with the proxy (ROW_COLUMNS), and what was found (for the findings)."""
    frames = []
    info = {"runs": len(study.runs), "computed_runs": 0, "without_file": 0, "images": [],
            "labels": list(dict.fromkeys(study.label(s) for s in study.runs)), "seeds": {}, "diverged": {}}
    for spec, folder, label, status in scan_run_files(study, run_dir, COADAPTATION, info):
        data = read_json(folder / COADAPTATION)
        if not data.get("computed") or not data.get("layers"):
            continue
        info["computed_runs"] += 1
        info["images"].append(int(data.get("images", 0)))
        frame = pd.DataFrame(data["layers"]).rename(columns={"index": "layer_index", "name": "layer"})
        frame["layer"] = frame["layer"].map(short_layer)
        frames.append(frame.assign(label=label, seed=spec.seed, status=status, dropout=_dropout_text(spec),
                                   setting=setting_without(study, spec, DROPOUT_AXES)))
    info["images"] = sorted(set(info["images"]))
    if not frames:
        return pd.DataFrame(columns=ROW_COLUMNS), info
    rows = pd.concat(frames, ignore_index=True)
    rows["mean_abs_corr"] = pd.to_numeric(rows["mean_abs_corr"], errors="coerce")  # null (nan) in JSON
    return rows[ROW_COLUMNS], info


# ---------------------------------------------------------------- numbers
def summarise_layers(rows: pd.DataFrame, info: dict | None = None) -> pd.DataFrame:
    """One row per (label, layer) in forward order: mean, min and max over seeds of the proxy (finite values),
    mean dead units over seeds."""
    info = info or {}
    out = []
    for label in dict.fromkeys(rows["label"]):
        sel = rows[rows["label"] == label]
        for (index, layer), g in sel.groupby(["layer_index", "layer"], sort=True):
            v = g["mean_abs_corr"].astype(float)
            v = v[np.isfinite(v)]
            out.append({"label": label, "setting": g["setting"].iloc[0], "dropout": g["dropout"].iloc[0],
                        "layer_index": int(index), "layer": layer, "kind": g["kind"].iloc[0],
                        "units": int(g["units"].iloc[0]),
                        "runs": int(info.get("seeds", {}).get(label, g["seed"].nunique())),
                        "seeds": int(len(v)), "diverged": int(info.get("diverged", {}).get(label, 0)),
                        "dead_units": float(g["dead_units"].mean()),
                        "mean": float(v.mean()) if len(v) else math.nan,
                        "min": float(v.min()) if len(v) else math.nan,
                        "max": float(v.max()) if len(v) else math.nan})
    return pd.DataFrame(out, columns=LAYER_COLUMNS)


def summarise_runs(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per run (label, seed) in order of appearance (RUN_COLUMNS): the mean over its hidden layers with a
    finite proxy of mean |corr|; `layers` names those layers."""
    out = []
    for (label, seed), g in rows.groupby(["label", "seed"], sort=False):
        g = g.sort_values("layer_index", kind="stable")
        ok = g[np.isfinite(g["mean_abs_corr"].astype(float))]
        out.append({"label": label, "seed": int(seed), "setting": g["setting"].iloc[0],
                    "dropout": g["dropout"].iloc[0], "layers": " ".join(ok["layer"]),
                    "mean_abs_corr": float(ok["mean_abs_corr"].astype(float).mean()) if len(ok) else math.nan})
    return pd.DataFrame(out, columns=RUN_COLUMNS)


def seed_counts(rows: pd.DataFrame | None, a: str, b: str, layer: str) -> dict:
    """Seed by seed (the seeds both labels have), is a's proxy in `layer` lower or higher than b's?"""
    if rows is None or rows.empty:
        return {"seeds_lower": 0, "seeds_higher": 0, "seeds_compared": 0}
    sel = rows[rows["layer"] == layer]
    ma = dict(zip(sel.loc[sel["label"] == a, "seed"], sel.loc[sel["label"] == a, "mean_abs_corr"].astype(float)))
    mb = dict(zip(sel.loc[sel["label"] == b, "seed"], sel.loc[sel["label"] == b, "mean_abs_corr"].astype(float)))
    both = [(ma[s], mb[s]) for s in ma if s in mb and math.isfinite(ma[s]) and math.isfinite(mb[s])]
    return {"seeds_lower": sum(x < y for x, y in both), "seeds_higher": sum(x > y for x, y in both),
            "seeds_compared": len(both)}


def dropout_pairs(layers: pd.DataFrame, rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each dropout cell against the no-dropout cell of the same setting, per layer both have (PAIR_COLUMNS).

    seeds_lower / seeds_higher / seeds_compared: of the seeds both cells ran, in how many the dropout run's
    proxy was below / above the no-dropout run's (needs the rows; 0 without them).
    """
    out = []
    for setting in dict.fromkeys(layers["setting"]):
        sel = layers[layers["setting"] == setting]
        base = sel[sel["dropout"] == "no dropout"]
        if base.empty:
            continue
        base_label = base["label"].iloc[0]
        base = base[base["label"] == base_label].set_index("layer")
        for label in dict.fromkeys(sel.loc[sel["dropout"] != "no dropout", "label"]):
            for _, r in sel[sel["label"] == label].iterrows():
                if r["layer"] not in base.index:
                    continue
                without = float(base.loc[r["layer"], "mean"])
                change = r["mean"] - without
                out.append({"setting": setting, "dropout_label": label, "no_dropout_label": base_label,
                            "dropout": r["dropout"], "layer_index": int(r["layer_index"]), "layer": r["layer"],
                            "with_dropout": r["mean"], "without_dropout": without, "change": change,
                            "relative_change": change / without if without else math.nan,
                            **seed_counts(rows, label, base_label, r["layer"])})
    return pd.DataFrame(out, columns=PAIR_COLUMNS)


def _g(x) -> str:
    return fmt_num(x, 3) or "n/a"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _verdict(lower: int, higher: int, n: int) -> str:
    if n == 0:
        return "no layer has a finite proxy in both cells"
    if lower == n:
        return (f"dropout lowered it in all {n} layer{'s' if n > 1 else ''}: by this proxy, dropout reduced "
                "co-adaptation")
    if lower == 0:
        return (f"dropout raised it in {higher} of {n} layer{'s' if n > 1 else ''} and lowered it in none: by this "
                "proxy, dropout did not reduce co-adaptation")
    most = {True: " (it lowered it in most layers)", False: " (it raised it in most layers)"}.get(
        lower > higher if lower != higher else None, "")
    return (f"dropout lowered it in {lower} and raised it in {higher} of {n} layers: no consistent effect by this "
            f"proxy{most}")


def coadaptation_findings(layers: pd.DataFrame, pairs: pd.DataFrame, info: dict) -> list[str]:
    out = []
    if layers.empty:
        out.append("No run of this study computed the co-adaptation proxy (coadapt is false in every run"
                   + (f"; {info['without_file']} run folders have no coadaptation.json at all"
                      if info.get("without_file") else "")
                   + "), so there is nothing to compare: set coadapt: true in the study's fixed parameters.")
        return out
    missing = info.get("runs", 0) - info.get("computed_runs", 0)
    if missing:
        out.append(f"{missing} of {info['runs']} runs have no co-adaptation numbers (coadapt: false); the rest "
                   "is from the others.")
    if pairs.empty:
        out.append("No two cells of this study differ only in dropout, so dropout and no dropout are not compared "
                   "directly; the table gives every cell's numbers.")
    for (_setting, label), pair in pairs.groupby(["setting", "dropout_label"], sort=False):
        pair = pair.sort_values("layer_index")
        per_layer = "; ".join(f"{r.layer} {_g(r.with_dropout)} vs {_g(r.without_dropout)}"
                              for r in pair.itertuples())
        v = _finite_pair(pair)
        lower, higher = int((v["change"] < 0).sum()), int((v["change"] > 0).sum())
        text = (f"{label} against {pair['no_dropout_label'].iloc[0]}: mean |corr| between hidden units per layer, "
                f"with dropout vs without: {per_layer}. {_capital(_verdict(lower, higher, len(v)))}")
        if len(v):
            rel = v["relative_change"].astype(float)
            rel = rel[np.isfinite(rel)]
            text += (f" (mean change over layers {v['change'].mean():+.3f}"
                     + (f", {100 * rel.mean():+.0f}% relative" if len(rel) else "") + ")")
        out.append(text + ".")
        compared = int(pair["seeds_compared"].sum())
        if compared > len(v):  # several seeds: does the direction hold seed by seed?
            out.append(f"Seed by seed ({label} against {pair['no_dropout_label'].iloc[0]}), the proxy with dropout "
                       f"was lower in {int(pair['seeds_lower'].sum())} and higher in "
                       f"{int(pair['seeds_higher'].sum())} of {compared} (layer, seed) comparisons.")
    dead = layers[layers["dead_units"] > 0]
    if not dead.empty:
        per_label = [f"{label}: " + ", ".join(f"{r.layer} {r.dead_units:g}/{r.units}" for r in g.itertuples())
                     for label, g in dead.groupby("label", sort=False)]
        out.append("Dead units (the same value on every image, left out of the proxy; mean over seeds): "
                   + "; ".join(per_label) + ".")
    if sorted(set(layers["runs"])) == [1]:
        out.append("One seed per cell: no spread over seeds is available to judge whether a difference is beyond "
                   "seed-to-seed variation.")
    return out


def _finite_pair(pair: pd.DataFrame) -> pd.DataFrame:
    return pair[np.isfinite(pair[["with_dropout", "without_dropout"]].astype(float)).all(axis=1)]


def _seeds_text(layers: pd.DataFrame, labels) -> str:
    """'3 seeds' (or '1 / 2 seeds' when the cells differ): the most seeds with a finite proxy in a layer."""
    counts = [int(layers.loc[layers["label"] == label, "seeds"].max()) for label in labels]
    text = " / ".join(str(c) for c in dict.fromkeys(counts))
    return f"{text} seed{'s' if counts != [1] * len(counts) else ''}"


def observed_paragraph(layers: pd.DataFrame, pairs: pd.DataFrame, info: dict) -> str:
    """The background's numbers: per dropout/no-dropout pair, the mean over the layers both have of the table's
    per-layer means over seeds."""
    if layers.empty:
        return ("This study's runs did not compute the proxy (coadapt is false in every run), so there are no "
                "numbers from them here.")
    parts = []
    for (_setting, label), pair in pairs.groupby(["setting", "dropout_label"], sort=False):
        v = _finite_pair(pair)
        if v.empty:
            continue
        base = pair["no_dropout_label"].iloc[0]
        parts.append(f"{_g(v['with_dropout'].mean())} with {label} vs {_g(v['without_dropout'].mean())} with "
                     f"{base} ({len(v)} layer{'s' if len(v) > 1 else ''}, {_seeds_text(layers, [label, base])})")
    if parts:
        return ("In this study's runs, mean |corr| averaged over the hidden layers was " + "; ".join(parts)
                + ". The findings and the table give every layer.")
    for label, g in layers.groupby("label", sort=False):
        v = g["mean"].astype(float)
        v = v[np.isfinite(v)]
        if len(v):
            parts.append(f"{_g(v.mean())} for {label} ({_seeds_text(layers, [label])})")
    return ("In this study's runs (no pair of cells that differ only in dropout), mean |corr| averaged over the "
            "hidden layers was " + ("; ".join(parts) or "not finite in any cell") + ".")


def coadaptation_background(layers: pd.DataFrame, pairs: pd.DataFrame, info: dict) -> list[dict]:
    """The fragment's background part: co-adaptation (Hinton et al.; Srivastava et al.), the proxy, and this
    study's numbers (from the same per-layer means as the table)."""
    images = "/".join(map(str, info.get("images") or [])) or "N"
    return [{"title": "Co-adaptation", "source": SOURCE,
             "paragraphs": [NOTION, PROXY.format(images=images), observed_paragraph(layers, pairs, info)]}]


def coadaptation_measures(runs: pd.DataFrame, study) -> dict:
    """stats["measures"]: per run, "mean_abs_corr" from coadapt_runs.csv, keyed by the run's parameters without
    the seed."""
    specs = {(study.label(spec), spec.seed): spec for spec in study.runs}
    out = []
    for r in runs.to_dict(orient="records"):
        spec = specs[(r["label"], int(r["seed"]))]
        out.append(measure({k: v for k, v in spec.as_strings().items() if k != "seed"}, spec.seed,
                           r["mean_abs_corr"]))
    return {"mean_abs_corr": out}


def layers_table(layers: pd.DataFrame) -> dict:
    rows = []
    for r in layers.itertuples():
        spread = f" ({_g(r.min)}..{_g(r.max)})" if r.seeds > 1 else ""
        rows.append([r.label + (f" (diverged {r.diverged}/{r.runs})" if r.diverged else ""), r.layer, r.kind,
                     str(r.units), f"{r.dead_units:g}", _g(r.mean) + spread])
    return table("Co-adaptation proxy per setting and hidden layer: mean |Pearson correlation| between pairs of "
                 "distinct live units on the fixed validation subset, eval mode (mean over seeds, min..max in "
                 "brackets with several seeds); dead units (constant on every image) are left out.",
                 ["setting", "layer", "kind", "units", "dead units", "mean |corr|"], rows,
                 diverged=[bool(d) for d in layers["diverged"]])


def coadaptation_stats(layers: pd.DataFrame, pairs: pd.DataFrame, info: dict) -> dict:
    return {"coadaptation": {label: {r.layer: r.mean for r in g.itertuples()}
                             for label, g in layers.groupby("label", sort=False)},
            "dropout_vs_none": pairs.to_dict(orient="records"),
            "computed_runs": info.get("computed_runs", 0), "runs": info.get("runs", 0)}


# ------------------------------------------------------- the registry entry
def compute(ctx) -> None:
    rows, info = read_coadaptation(ctx.study, ctx.run_dir)
    layers = summarise_layers(rows, info)
    rows.to_csv(ctx.out / ROWS, index=False)
    layers.to_csv(ctx.out / LAYERS_CSV, index=False)
    dropout_pairs(layers, rows).to_csv(ctx.out / PAIRS_CSV, index=False)
    summarise_runs(rows).to_csv(ctx.out / RUNS_CSV, index=False)
    write_json(ctx.out / INFO_JSON, info)
    if not layers.empty:
        from bnlab.figures.coadaptation import plot_coadaptation  # matplotlib: loaded only when drawing

        plot_coadaptation(layers, ctx.out / FIGURE_PNG, title=ctx.study.title, dataset_note=ctx.where)
    print(f"{info['computed_runs']}/{info['runs']} runs with the co-adaptation proxy")


def make_fragment(ctx) -> dict:
    text = {"label": str, "setting": str, "dropout": str, "layer": str, "kind": str}
    layers = pd.read_csv(ctx.out / LAYERS_CSV, dtype=text)
    pairs = pd.read_csv(ctx.out / PAIRS_CSV, dtype={**text, "dropout_label": str, "no_dropout_label": str})
    runs = pd.read_csv(ctx.out / RUNS_CSV, dtype={k: str for k in ("label", "setting", "dropout", "layers")})
    info = read_json(ctx.out / INFO_JSON)
    figures, tables = [], []
    if (ctx.out / FIGURE_PNG).exists():
        figures.append(figure(FIGURE_PNG, f"Co-adaptation proxy per hidden layer at the end of training, "
                                          f"{ctx.where}: mean |Pearson correlation| between pairs of distinct "
                                          "units' activations on the fixed validation subset, eval mode (conv "
                                          "units: channels, spatially averaged); bar = mean over seeds, whisker "
                                          "= min..max over seeds; hatched: no dropout."))
        tables.append(layers_table(layers))
    background = coadaptation_background(layers, pairs, info)
    findings = coadaptation_findings(layers, pairs, info)
    frag = fragment(figures=figures, tables=tables, findings=findings,
                    references=["Hinton et al. 2012", "Srivastava et al. 2014"],
                    stats={**coadaptation_stats(layers, pairs, info),
                           "measures": coadaptation_measures(runs, ctx.study)})
    frag["background"] = background
    return frag


register(Analysis(
    name="coadaptation",
    description="co-adaptation proxy (mean |corr| between hidden units) per hidden layer at the end of training, "
                "dropout vs none: figure, table, findings; the runs need coadapt: true",
    compute=compute, fragment=make_fragment, reads=(COADAPTATION, METRICS),
    requires=lambda study: None if any(r.coadapt for r in study.runs) else
    "no run computes the co-adaptation proxy; set coadapt: true in the study's fixed parameters"))
