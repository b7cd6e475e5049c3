"""Learned BN gamma/beta at the end of training, per layer (seed 003 p1: "what are the learned
batch norm parameters for each layer", and the violin plots of their distribution).

Input: run folders' bn_params.parquet (one row per snapshot, BN layer and channel; see
runfolder.py). Output: the last snapshot of each run as a long table, a per-layer summary,
and sentences built from that summary only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bnlab import runfolder
from bnlab.analyses.collect import read_runs
from bnlab.analyses.registry import Analysis, figure, register, table
from bnlab.analyses.registry import fragment as make_fragment

INPUT_DISPLAY = "input"
FINAL_COLUMNS = ("label", "seed", "layer", "layer_display", "layer_index", "kind", "channel",
                 "gamma", "beta", "step", "epoch", "layer_position")
STATS = ("mean", "sd", "min", "median", "max")
# |gamma - 1| and |beta| below this count as "still at init". Adam moves a parameter by up
# to ~lr (1e-3) per step, so after an epoch of MNIST (~900 steps) a parameter that gets any
# gradient is normally far past 0.01; one that is not is effectively untrained.
AT_INIT_TOL = 0.01

RunDir = tuple[str, int, str | Path]  # (label, seed, run folder)


def display_layer(layer: str, kind: str) -> str:
    """Short layer name for tables and axes: the input BN is 'input', 'features.conv2.bn' is 'conv2'.

    The zoo names a BN '<block>.bn' (layers.py), so the block's name is the one a reader knows.
    """
    if kind == "input":
        return INPUT_DISPLAY
    name = layer[: -len(".bn")] if layer.endswith(".bn") else layer
    return name.rsplit(".", 1)[-1] or layer


def read_bn_table(run_dir: str | Path) -> pd.DataFrame:
    """A run folder's bn_params table (empty, with its columns, for a run without BN)."""
    path = Path(run_dir) / runfolder.BN_PARAMS
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a finished bnlab run folder?")
    return pd.read_parquet(path)


def last_snapshot(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of the latest step: the end of training, or the divergence step of a diverged run."""
    return table[table["step"] == table["step"].max()]


def _display_names(table: pd.DataFrame) -> pd.Series:
    """display_layer per row; layers whose short names would clash keep their full name (sans '.bn').

    Two layers merged under one short name would silently pool their channels in the figure.
    """
    layers = table[["layer", "kind"]].drop_duplicates()
    short = {row.layer: display_layer(row.layer, row.kind) for row in layers.itertuples()}
    clashing = pd.Series(short).duplicated(keep=False)
    names = {layer: (layer.removesuffix(".bn") if clashing[layer] else name) for layer, name in short.items()}
    return table["layer"].map(names)


def _empty_final() -> pd.DataFrame:
    dtypes = {"label": object, "seed": "int64", "layer": object, "layer_display": object,
              "layer_index": "int64", "kind": object, "channel": "int64", "gamma": "float64",
              "beta": "float64", "step": "int64", "epoch": "float64", "layer_position": "int64"}
    return pd.DataFrame({c: pd.Series(dtype=dtypes[c]) for c in FINAL_COLUMNS})


def final_bn_params(run_dirs: Iterable[RunDir]) -> pd.DataFrame:
    """Last snapshot of each (label, seed, run folder) as one long table, runs in the given order.

    Columns: label, seed, layer, layer_display, layer_index, kind, channel, gamma, beta, plus
    step and epoch of the snapshot (a diverged run's is earlier than the others') and
    layer_position, the display name's place in the forward order over all runs (layer_order).
    Within a run rows go by layer_index (forward order), then channel. Runs without BN add no rows.
    """
    frames = []
    for label, seed, run_dir in run_dirs:
        table = read_bn_table(run_dir)
        if table.empty:
            continue
        last = last_snapshot(table).copy()
        last["label"], last["seed"] = label, int(seed)
        last["layer_display"] = _display_names(last)
        frames.append(last.sort_values(["layer_index", "channel"], kind="stable"))
    if not frames:
        return _empty_final()
    out = pd.concat(frames, ignore_index=True)
    out["layer_position"] = out["layer_display"].map({name: i for i, name in enumerate(layer_order(out))})
    return out[list(FINAL_COLUMNS)]


def labels_without_bn(run_dirs: Iterable[RunDir], params: pd.DataFrame) -> list[str]:
    """Labels, in run order, none of whose runs has a BN layer (for the figure's 'no BN' note)."""
    with_bn = set(params["label"])
    return [label for label in dict.fromkeys(label for label, _, _ in run_dirs) if label not in with_bn]


def layer_order(params: pd.DataFrame) -> list[str]:
    """Display names in forward order over all runs.

    layer_index alone cannot order across variants: with an input BN, conv1 is layer 1,
    without it layer 0. So each run's sequence is merged in, a new name going right after
    its predecessor in that run (or first): 'input' lands before conv1 either way.
    """
    order: list[str] = []
    runs = params.drop_duplicates(["label", "seed", "layer_display"]).sort_values("layer_index", kind="stable")
    for _, run in runs.groupby(["label", "seed"], sort=False):
        previous = None
        for name in run["layer_display"]:
            if name not in order:
                order.insert(0 if previous is None else order.index(previous) + 1, name)
            previous = name
    return order


def _stats(values: pd.Series) -> dict[str, float]:
    """mean, sd (ddof 1, NaN for one value), min, median, max of the finite values."""
    v = values[np.isfinite(values)]
    return {"mean": v.mean(), "sd": v.std(ddof=1), "min": v.min(), "median": v.median(), "max": v.max()}


def per_layer_summary(params: pd.DataFrame) -> pd.DataFrame:
    """One row per (label, layer) in forward order, statistics pooled over channels and seeds.

    Columns: label, layer (display name), kind, channels, seeds, n (rows pooled; non-finite
    values, from a diverged run, are left out of the statistics),
    gamma_/beta_ mean, sd, min, median, max, and the distance from init (gamma 1, beta 0):
    gamma_dev_mean = mean |gamma - 1|, beta_abs_mean = mean |beta| (a mean of beta alone
    lets positive and negative channels cancel).
    """
    columns = (["label", "layer", "kind", "channels", "seeds", "n"]
               + [f"{p}_{s}" for p in ("gamma", "beta") for s in STATS] + ["gamma_dev_mean", "beta_abs_mean"])
    rows = []
    order = {name: i for i, name in enumerate(layer_order(params))}
    for label in dict.fromkeys(params["label"]):
        sel = params[params["label"] == label]
        for layer in sorted(sel["layer_display"].unique(), key=order.__getitem__):
            g = sel[sel["layer_display"] == layer]
            row = {"label": label, "layer": layer, "kind": g["kind"].iloc[0],
                   "channels": int(g["channel"].nunique()), "seeds": int(g["seed"].nunique()), "n": len(g)}
            for p in ("gamma", "beta"):
                row.update({f"{p}_{s}": v for s, v in _stats(g[p].astype(float)).items()})
            row["gamma_dev_mean"] = _stats((g["gamma"].astype(float) - 1).abs())["mean"]
            row["beta_abs_mean"] = _stats(g["beta"].astype(float).abs())["mean"]
            rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def _g(x: float) -> str:
    return f"{x:.3g}"


def _spread(row: pd.Series, p: str) -> str:
    return f"median {_g(row[f'{p}_median'])}, range {_g(row[f'{p}_min'])} to {_g(row[f'{p}_max'])}"


def _label_findings(label: str, rows: pd.DataFrame) -> list[str]:
    """Where gamma and beta moved most (and least) from init for one label's layers."""
    out = []
    rows = rows.dropna(subset=["gamma_dev_mean", "beta_abs_mean"])
    if rows.empty:
        return [f"{label}: no finite BN parameters at the last snapshot."]
    g_max, g_min = rows.loc[rows["gamma_dev_mean"].idxmax()], rows.loc[rows["gamma_dev_mean"].idxmin()]
    b_max = rows.loc[rows["beta_abs_mean"].idxmax()]
    sentence = (f"{label}: gamma is furthest from its init 1 in {g_max['layer']} "
                f"(mean |gamma - 1| = {_g(g_max['gamma_dev_mean'])}; {_spread(g_max, 'gamma')})")
    if len(rows) > 1:
        sentence += f" and closest in {g_min['layer']} (mean |gamma - 1| = {_g(g_min['gamma_dev_mean'])})"
    out.append(sentence + ".")
    out.append(f"{label}: beta has the largest mean |beta| in {b_max['layer']} "
               f"({_g(b_max['beta_abs_mean'])}; {_spread(b_max, 'beta')}).")
    for _, row in rows[rows["kind"] == "input"].iterrows():
        moved = row["gamma_dev_mean"] > AT_INIT_TOL or row["beta_abs_mean"] > AT_INIT_TOL
        verdict = "moved away from" if moved else f"stayed within {AT_INIT_TOL} of"
        out.append(f"{label}: the input BN ({row['channels']} channel{'s' if row['channels'] != 1 else ''}) "
                   f"{verdict} its init (gamma, beta) = (1, 0): gamma {_spread(row, 'gamma')}; "
                   f"beta {_spread(row, 'beta')}.")
    return out


def bn_findings(summary: pd.DataFrame, no_bn_labels: Sequence[str] = ()) -> list[str]:
    """Sentences from per_layer_summary: per label, the layer whose gamma/beta moved most from
    init, and whether the input BN moved from (1, 0); labels without BN are named."""
    sentences: list[str] = []
    for label in dict.fromkeys(summary["label"]):
        sentences += _label_findings(label, summary[summary["label"] == label])
    if no_bn_labels:
        sentences.append(f"No BN layer (so no gamma/beta) in: {', '.join(no_bn_labels)}.")
    if summary.empty and not no_bn_labels:
        sentences.append("No run of this study has batch norm.")
    return sentences


# ------------------------------------------------------- the registry entry
LAYERS_CSV, PARAMS, VIOLINS_PNG = "bn_layers.csv", "bn_params.parquet", "bn_violins.png"


def compute(ctx) -> None:
    from bnlab.figures.violins import plot_bn_violins  # matplotlib: loaded only when drawing

    runs = read_runs(ctx.folder("summary") / "runs.csv", ctx.study.axes)
    bn = final_bn_params([(r.label, int(r.seed), ctx.run_root / r.run_dir) for r in runs.itertuples()])
    bn.to_parquet(ctx.out / PARAMS, index=False)
    per_layer_summary(bn).to_csv(ctx.out / LAYERS_CSV, index=False)
    no_bn = [label for label in dict.fromkeys(runs.label) if label not in set(bn.label)]
    plot_bn_violins(bn, ctx.out / VIOLINS_PNG, title=f"{ctx.study.title} ({ctx.where})", no_bn_labels=no_bn)


def layers_table(layers: pd.DataFrame) -> dict:
    rows = []
    for _, r in layers.iterrows():
        rows.append([r["label"], r["layer"], str(int(r["channels"])),
                     f"{r['gamma_mean']:.3f} ± {r['gamma_sd']:.3f}" if pd.notna(r["gamma_sd"]) else f"{r['gamma_mean']:.3f}",
                     f"{r['gamma_min']:.2f}..{r['gamma_max']:.2f}",
                     f"{r['beta_mean']:.3f} ± {r['beta_sd']:.3f}" if pd.notna(r["beta_sd"]) else f"{r['beta_mean']:.3f}",
                     f"{r['beta_min']:.2f}..{r['beta_max']:.2f}"])
    return table("Learned BN parameters per layer at the end of training, pooled over channels and seeds.",
                 ["setting", "layer", "channels", "gamma mean ± sd", "gamma min..max", "beta mean ± sd",
                  "beta min..max"], rows)


def fragment(ctx) -> dict:
    layers = pd.read_csv(ctx.out / LAYERS_CSV)
    return make_fragment(
        figures=[figure(VIOLINS_PNG, f"Learned BN gamma (top) and beta (bottom) per layer at the end of training, "
                                     f"{ctx.where}; each violin is the distribution over channels and seeds; "
                                     "dashed lines: the initial values.")],
        tables=[layers_table(layers)], findings=bn_findings(layers))


register(Analysis(name="bn_params", description="learned BN gamma/beta per layer at the end of training: table, "
                                                 "violin plots, findings (seed 003 p. 1)",
                  compute=compute, fragment=fragment, reads=(runfolder.BN_PARAMS,), needs=("summary",)))
