"""Internal covariate shift per layer, BN vs no BN (Ioffe & Szegedy 2015's notion, Santurkar et al. 2018's measure).

Input: the run folders' ics.parquet (bnlab/train/ics.py: every ics_every-th
optimizer step, per weight layer, l2 = ||G - G'||, cosine(G, G') and ||G||).
Per setting (the study's label of a cell) and layer the medians over seeds and
measured steps; cells that differ only in `bn` are compared layer by layer,
and every sentence's direction comes from those medians.

Measures (stats["measures"], bnlab.analyses.evidence), one entry per run with
ICS rows (params: the run's parameters but its seed; seed: the run's): the
median over measured steps and layers of ||G - G'|| / ||G|| ("ics_relative"),
of ||G - G'|| ("ics_l2") and of cos(G, G') ("ics_cosine"). The layers are the
setting's common ones, those every cell of the setting measured, so a BN run and
its no-BN partner are medians over the same layers (an input BN adds layer 1 to
its own cell only); they are in ics_runs.csv.

The fragment's "background" explains internal covariate shift (Ioffe &
Szegedy's notion and Santurkar et al.'s Definition 2.1) with this study's numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bnlab.analyses.collect import scan_run_files, setting_without
from bnlab.analyses.evidence import measure
from bnlab.analyses.formats import fmt_num, short_layer
from bnlab.analyses.registry import Analysis, figure, fragment, register, table
from bnlab.runfolder import ICS, METRICS, read_json, write_json

BN_AXIS = "bn"
NO_BN = "none"
ROWS, LAYERS_CSV, PAIRS_CSV, RUNS_CSV, INFO_JSON, FIGURE_PNG = "ics_rows.parquet", "ics_layers.csv", \
    "ics_pairs.csv", "ics_runs.csv", "ics_info.json", "ics.png"
ROW_COLUMNS = ["label", "seed", "bn", "setting", "status", "step", "epoch", "layer_index", "layer", "l2",
               "cosine", "grad_norm", "rel_l2"]
LAYER_COLUMNS = ["label", "bn", "setting", "layer_index", "layer", "runs", "seeds", "rows", "diverged", "median_l2",
                 "median_rel_l2", "median_cosine"]
PAIR_COLUMNS = ["setting", "bn", "bn_label", "no_bn_label", "layer_index", "layer", "bn_median_l2",
                "no_bn_median_l2", "bn_median_rel_l2", "no_bn_median_rel_l2", "bn_median_cosine",
                "no_bn_median_cosine", "seeds_lower", "seeds_higher", "seeds_compared"]
RUN_COLUMNS = ["label", "seed", "bn", "setting", "layers", "rows", "median_l2", "median_rel_l2", "median_cosine"]
# measure name -> the ics_runs.csv column it publishes
MEASURES = {"ics_relative": "median_rel_l2", "ics_l2": "median_l2", "ics_cosine": "median_cosine"}

SOURCE = "Seed 003, problem 1.1"
NOTION = (
    "Ioffe & Szegedy 2015 named internal covariate shift (ICS) the change in the distribution of a layer's inputs "
    "while the network trains: every update of the layers below it moves what the layer receives, so each layer "
    "keeps re-adapting to a moving input, which calls for small learning rates and careful initialisation. They "
    "introduced batch norm to reduce it, by fixing the mean and variance of every unit's input over the "
    "mini-batch.")
DEFINITION = (
    "Santurkar et al. 2018 (Definition 2.1) measure ICS by what it does to learning rather than to a "
    "distribution. For layer i at step t, on that step's own batch, G is the gradient of the loss with respect "
    "to the layer's weights with every layer at its value before the update, and G' the same gradient once only "
    "the layers before i have taken this step's update; ICS = ||G - G'||_2, with cos(G, G') beside it (1: the "
    "earlier layers' update did not turn the gradient). In their experiments networks with BN did not have lower "
    "ICS in this sense, often higher, and they argue that BN helps optimisation by smoothing the loss landscape "
    "instead.")
METHOD = (
    "bnlab measures it at every {every}, for every Linear and Conv2d layer with trainable parameters before it "
    "(the first layer has none unless the input is batch-normalised): same batch, same dropout masks, BN on the "
    "batch's statistics, and the run's own training left unchanged. The table gives medians over seeds and "
    "measured steps; ||G - G'|| / ||G|| is the shift relative to the gradient's size.")


# ---------------------------------------------------------------- reading
def read_ics(study, run_dir) -> tuple[pd.DataFrame, dict]:
    """Every ICS row of every run of the study (ROW_COLUMNS), and what was found (for the findings):
    runs, measured_runs, without_file, ics_every (the values used), labels, seeds and diverged runs per label."""
    frames = []
    info = {"runs": len(study.runs), "measured_runs": 0, "without_file": 0,
            "ics_every": sorted({s.ics_every for s in study.runs if s.ics_every}),
            "labels": list(dict.fromkeys(study.label(s) for s in study.runs)), "seeds": {}, "diverged": {}}
    for spec, folder, label, status in scan_run_files(study, run_dir, ICS, info):
        rows = pd.read_parquet(folder / ICS)
        if rows.empty:
            continue
        info["measured_runs"] += 1
        frames.append(rows.assign(label=label, seed=spec.seed, bn=spec.bn, status=status,
                                  setting=setting_without(study, spec, (BN_AXIS,)),
                                  layer=rows["layer"].map(short_layer)))
    if not frames:
        return pd.DataFrame(columns=ROW_COLUMNS), info
    rows = pd.concat(frames, ignore_index=True)
    g = rows["grad_norm"].astype(float)
    rows["rel_l2"] = (rows["l2"].astype(float) / g).where(g > 0)
    return rows[ROW_COLUMNS], info


# ---------------------------------------------------------------- numbers
def _median(values: pd.Series) -> float:
    v = values.astype(float)
    v = v[np.isfinite(v)]
    return float(v.median()) if len(v) else math.nan


def summarise_layers(rows: pd.DataFrame, info: dict | None = None) -> pd.DataFrame:
    """One row per (label, layer), labels in order of appearance and layers in forward order: medians over
    seeds and measured steps of l2, l2 / ||G|| and cosine (finite values only).

    runs / diverged: the label's runs and diverged runs (from read_ics's info; else the seeds with rows, 0).
    """
    info = info or {}
    out = []
    for label in dict.fromkeys(rows["label"]):
        sel = rows[rows["label"] == label]
        for (index, layer), g in sel.groupby(["layer_index", "layer"], sort=True):
            out.append({"label": label, "bn": str(g["bn"].iloc[0]), "setting": g["setting"].iloc[0],
                        "layer_index": int(index), "layer": layer,
                        "runs": int(info.get("seeds", {}).get(label, g["seed"].nunique())),
                        "seeds": int(g["seed"].nunique()), "rows": len(g),
                        "diverged": int(info.get("diverged", {}).get(label, 0)),
                        "median_l2": _median(g["l2"]), "median_rel_l2": _median(g["rel_l2"]),
                        "median_cosine": _median(g["cosine"])})
    return pd.DataFrame(out, columns=LAYER_COLUMNS)


def common_layers(rows: pd.DataFrame) -> dict[str, list[str]]:
    """Per setting, the layers every cell (label) of the setting has rows for, in forward order."""
    out = {}
    for setting, sel in rows.groupby("setting", sort=False):
        common = set.intersection(*(set(g["layer"]) for _, g in sel.groupby("label", sort=False)))
        ordered = sel.drop_duplicates("layer").sort_values("layer_index", kind="stable")["layer"]
        out[setting] = [layer for layer in ordered if layer in common]
    return out


def summarise_runs(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per run (label, seed) in order of appearance (RUN_COLUMNS): medians over its measured steps and
    its setting's common layers (common_layers) of l2, l2 / ||G|| and cosine; `layers` names them."""
    common = common_layers(rows) if not rows.empty else {}
    out = []
    for (label, seed), g in rows.groupby(["label", "seed"], sort=False):
        layers = common[g["setting"].iloc[0]]
        sel = g[g["layer"].isin(layers)]
        out.append({"label": label, "seed": int(seed), "bn": str(g["bn"].iloc[0]), "setting": g["setting"].iloc[0],
                    "layers": " ".join(layers), "rows": len(sel), "median_l2": _median(sel["l2"]),
                    "median_rel_l2": _median(sel["rel_l2"]), "median_cosine": _median(sel["cosine"])})
    return pd.DataFrame(out, columns=RUN_COLUMNS)


def seed_counts(rows: pd.DataFrame | None, a: str, b: str, layer: str, value: str) -> dict:
    """Seed by seed (the seeds both labels have), is a's median `value` in `layer` lower or higher than b's?"""
    if rows is None or rows.empty:
        return {"seeds_lower": 0, "seeds_higher": 0, "seeds_compared": 0}
    sel = rows[rows["layer"] == layer]

    def per_seed(label):
        g = sel[sel["label"] == label]
        return {seed: _median(v[value]) for seed, v in g.groupby("seed")}

    ma, mb = per_seed(a), per_seed(b)
    both = [(ma[s], mb[s]) for s in ma if s in mb and math.isfinite(ma[s]) and math.isfinite(mb[s])]
    return {"seeds_lower": sum(x < y for x, y in both), "seeds_higher": sum(x > y for x, y in both),
            "seeds_compared": len(both)}


def bn_pairs(layers: pd.DataFrame, rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each BN cell against the no-BN cell of the same setting, per layer both have (PAIR_COLUMNS).

    seeds_lower / seeds_higher / seeds_compared: of the seeds both cells ran, in how many the BN run's
    median l2 was below / above the no-BN run's (needs the rows; 0 without them).
    """
    out = []
    for setting in dict.fromkeys(layers["setting"]):
        sel = layers[layers["setting"] == setting]
        base = sel[sel["bn"] == NO_BN]
        if base.empty:
            continue
        base_label = base["label"].iloc[0]
        base = base[base["label"] == base_label].set_index("layer")
        for label in dict.fromkeys(sel.loc[sel["bn"] != NO_BN, "label"]):
            cell = sel[sel["label"] == label]
            for _, r in cell.iterrows():
                if r["layer"] not in base.index:
                    continue
                b = base.loc[r["layer"]]
                out.append({"setting": setting, "bn": r["bn"], "bn_label": label, "no_bn_label": base_label,
                            "layer_index": int(r["layer_index"]), "layer": r["layer"],
                            "bn_median_l2": r["median_l2"], "no_bn_median_l2": b["median_l2"],
                            "bn_median_rel_l2": r["median_rel_l2"], "no_bn_median_rel_l2": b["median_rel_l2"],
                            "bn_median_cosine": r["median_cosine"], "no_bn_median_cosine": b["median_cosine"],
                            **seed_counts(rows, label, base_label, r["layer"], "l2")})
    return pd.DataFrame(out, columns=PAIR_COLUMNS)


def _count(pair: pd.DataFrame, bn_col: str, base_col: str, better_is_lower: bool = True) -> tuple[int, int, int]:
    """(layers where BN's value is lower [or higher if not better_is_lower], where it is the other way, compared)."""
    v = pair[[bn_col, base_col]].astype(float)
    v = v[np.isfinite(v).all(axis=1)]
    lower = int((v[bn_col] < v[base_col]).sum())
    higher = int((v[bn_col] > v[base_col]).sum())
    return (lower, higher, len(v)) if better_is_lower else (higher, lower, len(v))


def _g(x) -> str:
    return fmt_num(x, 3) or "n/a"


def _every(values) -> str:
    """'k-th optimizer step (k = 50)'; with several values 'k = 20/50'."""
    return f"k-th optimizer step (k = {'/'.join(map(str, values)) or '?'})"


def _verdict(lower: int, higher: int, n: int) -> str:
    if n == 0:
        return "no layer has finite medians in both cells"
    if lower == n:
        return (f"BN's was lower in all {n} layer{'s' if n > 1 else ''}: here BN did reduce ICS in Santurkar et "
                "al.'s sense (they found no such reduction)")
    if lower == 0:
        return (f"BN's was higher in {higher} of {n} layer{'s' if n > 1 else ''} and lower in none: BN did not "
                "reduce ICS in Santurkar et al.'s sense")
    if lower > higher:
        return (f"BN's was lower in {lower} and higher in {higher} of {n} layers: no consistent reduction of ICS "
                "in Santurkar et al.'s sense, though lower in most layers")
    if higher > lower:
        return (f"BN's was lower in {lower} and higher in {higher} of {n} layers: in most layers BN did not "
                "reduce ICS in Santurkar et al.'s sense")
    return (f"BN's was lower in {lower} and higher in {higher} of {n} layers: no consistent reduction of ICS in "
            "Santurkar et al.'s sense")


def ics_findings(layers: pd.DataFrame, pairs: pd.DataFrame, info: dict) -> list[str]:
    """Sentences from the medians: per BN/no-BN pair, each layer's numbers and the direction over layers
    (the explanation of ICS is in ics_background)."""
    out = []
    if layers.empty:
        out.append("No run of this study recorded internal covariate shift (ics_every is 0 in every run"
                   + (f"; {info['without_file']} run folders have no ics.parquet at all" if info.get("without_file")
                      else "")
                   + "), so there is nothing to compare: set ics_every: k in the study's fixed parameters to "
                   "measure it every k-th optimizer step.")
        return out
    missing = info.get("runs", 0) - info.get("measured_runs", 0)
    if missing:
        out.append(f"{missing} of {info['runs']} runs have no ICS rows (ics_every 0, every step accumulated from "
                   "micro-batches, or diverged before the first measured step); the rest is from the others.")
    if pairs.empty:
        out.append("No two cells of this study differ only in bn, so BN and no BN are not compared directly; the "
                   "table gives every cell's medians.")
        return out
    for (setting, bn_label), pair in pairs.groupby(["setting", "bn_label"], sort=False):
        base_label = pair["no_bn_label"].iloc[0]
        per_layer = "; ".join(f"{r.layer} {_g(r.bn_median_l2)} vs {_g(r.no_bn_median_l2)}"
                              for r in pair.sort_values("layer_index").itertuples())
        lower, higher, n = _count(pair, "bn_median_l2", "no_bn_median_l2")
        out.append(f"{bn_label} against {base_label}: median ICS ||G - G'|| per layer, with BN vs without: "
                   f"{per_layer}. {_verdict(lower, higher, n)}.")
        rl, rh, rn = _count(pair, "bn_median_rel_l2", "no_bn_median_rel_l2")
        cl, ch, cn = _count(pair, "bn_median_cosine", "no_bn_median_cosine", better_is_lower=False)
        if rn:
            out.append(f"Relative to the gradient's size (||G - G'|| / ||G||), BN's shift was lower in {rl} and "
                       f"higher in {rh} of {rn} layers (median over layers "
                       f"{_g(pair['bn_median_rel_l2'].median())} with BN, "
                       f"{_g(pair['no_bn_median_rel_l2'].median())} without); cos(G, G') was closer to 1 with BN in "
                       f"{cl} and further from 1 in {ch} of {cn} layers.")
        compared = int(pair["seeds_compared"].sum())
        if compared > n:  # several seeds: does the direction hold seed by seed?
            out.append(f"Seed by seed (each run's median ||G - G'||), BN's was lower in "
                       f"{int(pair['seeds_lower'].sum())} and higher in {int(pair['seeds_higher'].sum())} of "
                       f"{compared} (layer, seed) comparisons of {bn_label} against {base_label}.")
    seeds = sorted(set(layers["seeds"]))
    if seeds == [1]:
        out.append("One seed per cell: the medians pool that run's measured steps, and no spread over seeds is "
                   "available to judge whether a difference is beyond seed-to-seed variation.")
    return out


def _seeds_text(layers: pd.DataFrame, labels) -> str:
    """'3 seeds' (or '1 / 2 seeds' when the cells differ): the seeds with rows of the cells."""
    counts = [int(layers.loc[layers["label"] == label, "seeds"].max()) for label in labels]
    text = " / ".join(str(c) for c in dict.fromkeys(counts))
    return f"{text} seed{'s' if counts != [1] * len(counts) else ''}"


def observed_paragraph(layers: pd.DataFrame, pairs: pd.DataFrame, info: dict) -> str:
    """The background's numbers: per BN/no-BN pair, the last common layer's medians (the table's numbers)."""
    if layers.empty:
        return ("This study's runs did not measure it (ics_every is 0 in every run), so there are no numbers from "
                "them here.")
    parts = []
    if pairs.empty:
        for label, g in layers.groupby("label", sort=False):
            last = g.sort_values("layer_index").iloc[-1]
            parts.append(f"{label}: {_g(last['median_rel_l2'])} in {last['layer']}, cos(G, G') "
                         f"{_g(last['median_cosine'])} ({_seeds_text(layers, [label])})")
        return ("In this study's runs (no BN/no-BN pair), the median relative shift ||G - G'|| / ||G|| of each "
                "cell's last measured layer was " + "; ".join(parts) + ".")
    for (_setting, bn_label), pair in pairs.groupby(["setting", "bn_label"], sort=False):
        last = pair.sort_values("layer_index").iloc[-1]
        base = last["no_bn_label"]
        parts.append(f"in {last['layer']}, {_g(last['bn_median_rel_l2'])} with {bn_label} against "
                     f"{_g(last['no_bn_median_rel_l2'])} with {base} (cos(G, G') {_g(last['bn_median_cosine'])} vs "
                     f"{_g(last['no_bn_median_cosine'])}, {_seeds_text(layers, [bn_label, base])})")
    return ("In this study's runs, the median relative shift ||G - G'|| / ||G|| of the last layer both cells of a "
            "BN/no-BN pair measured was " + "; ".join(parts) + ". The findings compare every layer.")


def ics_background(layers: pd.DataFrame, pairs: pd.DataFrame, info: dict) -> list[dict]:
    """The fragment's background part: what ICS is (Ioffe & Szegedy; Santurkar et al.'s Definition 2.1), how it
    is measured here, and this study's numbers (from the same medians as the table)."""
    return [{"title": "Internal covariate shift", "source": SOURCE,
             "paragraphs": [NOTION, DEFINITION, METHOD.format(every=_every(info.get("ics_every") or [])),
                            observed_paragraph(layers, pairs, info)]}]


def ics_measures(runs: pd.DataFrame, study) -> dict:
    """stats["measures"]: per run, its medians over steps and common layers (ics_runs.csv), keyed by the run's
    parameters without the seed."""
    specs = {(study.label(spec), spec.seed): spec for spec in study.runs}
    out = {name: [] for name in MEASURES}
    for r in runs.to_dict(orient="records"):
        spec = specs[(r["label"], int(r["seed"]))]
        params = {k: v for k, v in spec.as_strings().items() if k != "seed"}
        for name, column in MEASURES.items():
            out[name].append(measure(params, spec.seed, r[column]))
    return out


def layers_table(layers: pd.DataFrame) -> dict:
    rows = [[r.label + (f" (diverged {r.diverged}/{r.runs})" if r.diverged else ""), r.layer, str(r.rows),
             _g(r.median_l2), _g(r.median_rel_l2), _g(r.median_cosine)] for r in layers.itertuples()]
    return table("Internal covariate shift per setting and weight layer (Santurkar et al. 2018, Definition 2.1): "
                 "medians over seeds and measured steps of ||G - G'||, of ||G - G'|| / ||G|| and of cos(G, G').",
                 ["setting", "layer", "measured", "median ||G - G'||", "median relative", "median cos(G, G')"],
                 rows, diverged=[bool(d) for d in layers["diverged"]])


def ics_stats(layers: pd.DataFrame, pairs: pd.DataFrame, info: dict) -> dict:
    """Key numbers for other analyses: {setting: {layer: median}} of l2, relative l2 and cosine, and the pairs."""
    def per(col: str) -> dict:
        return {label: {r.layer: getattr(r, col) for r in g.itertuples()}
                for label, g in layers.groupby("label", sort=False)}

    return {"ics": per("median_l2"), "ics_relative": per("median_rel_l2"), "ics_cosine": per("median_cosine"),
            "bn_vs_no_bn": pairs.to_dict(orient="records"), "ics_every": info.get("ics_every", []),
            "measured_runs": info.get("measured_runs", 0), "runs": info.get("runs", 0)}


# ------------------------------------------------------- the registry entry
def compute(ctx) -> None:
    rows, info = read_ics(ctx.study, ctx.run_dir)
    layers = summarise_layers(rows, info)
    pairs = bn_pairs(layers, rows)
    rows.to_parquet(ctx.out / ROWS, index=False)
    layers.to_csv(ctx.out / LAYERS_CSV, index=False)
    pairs.to_csv(ctx.out / PAIRS_CSV, index=False)
    summarise_runs(rows).to_csv(ctx.out / RUNS_CSV, index=False)
    write_json(ctx.out / INFO_JSON, info)
    if not rows.empty:
        from bnlab.figures.ics import plot_ics  # matplotlib: loaded only when drawing

        plot_ics(rows, ctx.out / FIGURE_PNG, title=ctx.study.title, dataset_note=ctx.where,
                 max_layers=ctx.options["max_layers"])
    print(f"{info['measured_runs']}/{info['runs']} runs with ICS rows, {len(rows)} rows")


def make_fragment(ctx) -> dict:
    layers = pd.read_csv(ctx.out / LAYERS_CSV, dtype={"bn": str, "setting": str, "label": str, "layer": str})
    pairs = pd.read_csv(ctx.out / PAIRS_CSV, dtype={"bn": str, "setting": str, "layer": str})
    runs = pd.read_csv(ctx.out / RUNS_CSV, dtype={"label": str, "bn": str, "setting": str, "layers": str})
    info = read_json(ctx.out / INFO_JSON)
    figures, tables = [], []
    if (ctx.out / FIGURE_PNG).exists():
        figures.append(figure(FIGURE_PNG, f"Internal covariate shift per weight layer, {ctx.where}, measured as "
                                          "Santurkar et al. 2018 define it (Definition 2.1) at every "
                                          f"{_every(info['ics_every'])}: left, ||G - G'|| (log scale), the change "
                                          "of the layer's weight gradient on the step's own batch when only the "
                                          "layers before it "
                                          "have taken the step; right, cos(G, G'). Mean over seeds (line), "
                                          "min..max over seeds (band); solid: with BN, dashed: without; "
                                          "x: last measured step of a diverged run."))
    if not layers.empty:
        tables.append(layers_table(layers))
    background = ics_background(layers, pairs, info)
    findings = ics_findings(layers, pairs, info)
    frag = fragment(figures=figures, tables=tables, findings=findings,
                    references=["Ioffe & Szegedy 2015", "Santurkar et al. 2018"],
                    stats={**ics_stats(layers, pairs, info), "measures": ics_measures(runs, ctx.study)})
    frag["background"] = background
    return frag


register(Analysis(
    name="ics",
    description="internal covariate shift per weight layer over training (Santurkar et al. 2018, Definition 2.1), "
                "BN vs no BN: figure, medians table, findings; the runs need ics_every > 0",
    compute=compute, fragment=make_fragment, reads=(ICS, METRICS),
    requires=lambda study: None if any(r.ics_every for r in study.runs) else
    "no run measures internal covariate shift; set ics_every (e.g. 50) in the study's fixed parameters",
    options={"max_layers": {"type": "integer", "minimum": 1, "default": 8,
                            "description": "most weight layers drawn in the figure (evenly spread, first and last "
                                           "included); the table has every layer"}}))
