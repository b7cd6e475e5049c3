"""The best network of a search over architectures and training choices (seed 004 section 1).

Every distinct setting of the study (its runs less the seed) is a candidate. The section reports, per
candidate, test error, parameters, training seconds and optimizer steps; the accuracy-versus-size
trade-off with its Pareto front; the best network, chosen on validation accuracy (choosing on the test
set would make its test error an optimistic estimate) and described by its structure; and, to look
inside, the first conv layer's filters and one test image's feature maps for the best network with
batch norm and the best without.

Noise: a difference between candidates is called real only beyond two standard errors. A run's
spread is the pooled seed-to-seed standard deviation of the candidates trained with two or more seeds;
where none is, the binomial standard error of an accuracy on the validation set stands in.
"""

from __future__ import annotations

import math

import pandas as pd

from bnlab.analyses.collect import collect_runs
from bnlab.analyses.formats import fmt_pct
from bnlab.analyses.measures import name
from bnlab.analyses.registry import Analysis, figure, register, table
from bnlab.analyses.registry import fragment as make_fragment
from bnlab.data.limits import val_size_for
from bnlab.runfolder import METRICS, WEIGHTS

CANDIDATES_CSV, TRADEOFF_PNG, INSIDE_PNG, INSIDE_CSV = "candidates.csv", "tradeoff.png", "inside.png", "inside.csv"
SAMPLE_INDEX = 0  # the test image whose feature maps are shown (the first of the test split)
INSIDE_COLUMNS = ("kind", "label", "channels", "dead", "mean_abs", "norm_min", "norm_max", "target")


def plan_params(plan, study) -> dict:
    return {"val_size": val_size_for(plan.config["data"], study.runs[0].dataset) if study.runs else 0}


def extra_inputs(plan, study) -> list[str]:
    """The prepared dataset: the feature maps are of a test image as the runs saw it."""
    return sorted({f"data/{run.dataset}.pt" for run in study.runs})


def requires(study) -> str | None:
    if len({study.label(run) for run in study.runs}) < 2:
        return "the best_net analysis compares candidates: the study needs at least two settings in its grid"
    return None


# ------------------------------------------------------------------ candidates
def candidate_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate (label): seeds, runs that finished, mean accuracies, size and cost.

    A candidate any of whose runs diverged keeps its row, marked, with the finished runs' means."""
    rows = []
    for label, group in runs.groupby("label", sort=False):
        ok = group[group.status == "ok"]
        rows.append({
            "label": label, "runs": len(group), "ok": len(ok), "diverged": int((group.status == "diverged").sum()),
            "val_acc": ok.final_val_acc.mean() if len(ok) else math.nan,
            "val_sd": ok.final_val_acc.std(ddof=1) if len(ok) > 1 else math.nan,
            "test_acc": ok.final_test_acc.mean() if len(ok) else math.nan,
            "parameters": int(group.parameters.iloc[0]),
            "train_seconds": ok.train_seconds.mean() if len(ok) else group.train_seconds.mean(),
            "steps": int(group.steps.max()),
            "run_dir": (ok if len(ok) else group).run_dir.iloc[0],
        })
    return pd.DataFrame(rows)


def run_spread(cands: pd.DataFrame, val_size: int) -> tuple[float, str]:
    """(standard deviation of one run's validation accuracy, where it comes from)."""
    multi = cands[(cands.ok >= 2) & cands.val_sd.notna()]
    if len(multi):  # pooled variance, each candidate weighted by its degrees of freedom
        dof = multi.ok - 1
        sd = math.sqrt(float((dof * multi.val_sd ** 2).sum() / dof.sum()))
        return sd, f"the seed-to-seed spread of the {len(multi)} candidates trained with several seeds"
    p = float(cands.val_acc.max()) if cands.val_acc.notna().any() else math.nan
    sd = math.sqrt(max(p * (1 - p), 0.0) / val_size) if val_size > 0 and math.isfinite(p) else math.nan
    return sd, f"the binomial standard error of an accuracy on {val_size:,} validation images, one seed each"


def pareto_front(cands: pd.DataFrame, size: str = "parameters", score: str = "test_acc") -> list[str]:
    """Labels of the candidates no other beats on both counts (fewer or equal `size`, higher `score`,
    one of them strictly), smallest first."""
    done = cands[cands[score].notna()].sort_values([size, score], ascending=[True, False])
    front, best = [], -math.inf
    for row in done.itertuples():
        if getattr(row, score) > best:  # sorted by size: a candidate is on the front if it beats every smaller one
            front.append(row.label)
            best = getattr(row, score)
    return front


def difference_se(sd: float, n_a: int, n_b: int) -> float:
    """Standard error of the difference of two candidates' mean accuracies over n_a and n_b runs."""
    return sd * math.sqrt(1 / max(n_a, 1) + 1 / max(n_b, 1)) if math.isfinite(sd) else math.nan


def choose_best(cands: pd.DataFrame, sd: float) -> dict:
    """The candidate with the highest validation accuracy and those within two standard errors of it."""
    done = cands[cands.val_acc.notna()]
    if not len(done):
        return {"label": None, "close": []}
    top = done.loc[done.val_acc.idxmax()]
    close = []
    for row in done.itertuples():
        if row.label == top.label:
            continue
        se = difference_se(sd, row.ok, top.ok)
        if math.isfinite(se) and top.val_acc - row.val_acc <= 2 * se:
            close.append(row.label)
    return {"label": top.label, "close": close}


def structure(values: dict) -> str:
    """A run's network and training in words, from its parameters (canonical strings)."""
    model, widths = values["model"], values["widths"]
    net = f"{model} ({'default widths' if widths == 'default' else 'widths ' + widths.replace('x', '-')})"
    bn = {"none": "no batch norm", "hidden": "batch norm after every hidden layer",
          "input+hidden": "batch norm on the input and after every hidden layer"}.get(values["bn"], values["bn"])
    drop = "no dropout" if float(values["dropout_hidden"]) == 0 else f"dropout {values['dropout_hidden']}"
    loss = ("cross-entropy" if float(values["label_smoothing"]) == 0
            else f"label-smoothed cross-entropy ({values['label_smoothing']})")
    reg = [f"L2 {values['l2']} on the weights"] if float(values["l2"]) else []
    if values["weight_decay"] not in ("0", "na") and float(values["weight_decay"]):
        reg.append(f"weight decay {values['weight_decay']}")
    opt = values["optimizer"] + (f" (momentum {values['momentum']})" if values["momentum"] not in ("na", "0") else "")
    return (f"{net}, {values['activation']}, {bn}, {drop}; {loss}{', ' + ', '.join(reg) if reg else ''}; "
            f"{opt}, lr {values['lr']}, batch {values['batch_size']}, {values['epochs']} epochs")


# ------------------------------------------------------------------ looking inside
def first_conv_and_maps(model, image):
    """(first conv's weights [C_out, C_in, k, k], the activations after it [C_out, H, W]) for one image,
    or None for a model without a conv layer. The maps are the output of the first activation module
    after the first conv (after its batch norm, where there is one)."""
    import torch
    from torch import nn

    modules = list(model.modules())
    conv_at = next((i for i, m in enumerate(modules) if isinstance(m, nn.Conv2d)), None)
    if conv_at is None:
        return None
    acts = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.GELU, nn.LeakyReLU)
    act = next((m for m in modules[conv_at + 1:] if isinstance(m, acts)), modules[conv_at])
    seen = {}
    handle = act.register_forward_hook(lambda _m, _i, out: seen.setdefault("maps", out.detach()))
    model.eval()
    with torch.inference_mode():
        model(image.unsqueeze(0))
    handle.remove()
    return modules[conv_at].weight.detach().float().cpu(), seen["maps"][0].float().cpu()


def map_stats(maps, filters) -> dict:
    """Of a [C, H, W] stack of feature maps: how many are zero everywhere (a dead map for this image) and
    their mean absolute value; of the filters [C, C_in, k, k]: the smallest and largest L2 norm."""
    flat = maps.reshape(maps.shape[0], -1)
    norms = filters.reshape(filters.shape[0], -1).norm(dim=1)
    return {"channels": int(flat.shape[0]), "dead": int((flat.abs().max(dim=1).values == 0).sum()),
            "mean_abs": float(flat.abs().mean()), "norm_min": float(norms.min()), "norm_max": float(norms.max())}


def inside_choice(cands: pd.DataFrame, runs: pd.DataFrame) -> dict[str, str]:
    """{'with BN': label, 'without BN': label}: the best candidate by validation accuracy of each kind."""
    out = {}
    bn_of = runs.groupby("label", sort=False).bn_value.first()
    for kind, with_bn in (("with BN", True), ("without BN", False)):
        pool = cands[cands.val_acc.notna() & cands.label.map(lambda lab: (bn_of[lab] != "none") == with_bn)]
        if len(pool):
            out[kind] = pool.loc[pool.val_acc.idxmax(), "label"]
    return out


def _look_inside(ctx, cands: pd.DataFrame, runs: pd.DataFrame) -> list[dict]:
    import torch

    from bnlab.data import load_prepared
    from bnlab.runfolder import load_run
    from bnlab.train.run import build_model
    from bnlab.train.tensors import device_splits

    chosen = inside_choice(cands, runs)
    panels, cache = [], {}
    for kind, label in chosen.items():
        row = cands[cands.label == label].iloc[0]
        spec = next(s for s in ctx.study.runs if s.relative_dir() == row.run_dir)
        key = (spec.dataset, spec.train_subset, spec.normalize)
        if key not in cache:  # the test images exactly as the run saw them (normalised by its training split)
            data = load_prepared(ctx.results / "data" / f"{spec.dataset}.pt")
            cache[key] = (data, device_splits(data, train_subset=spec.train_subset, normalize=spec.normalize,
                                              device="cpu"))
        data, splits = cache[key]
        model = build_model(spec, data, torch.device("cpu"))  # the run's own network, then its final weights
        model.load_state_dict(load_run(ctx.run_dir(spec)).weights())
        got = first_conv_and_maps(model, splits.test_x[SAMPLE_INDEX])
        if got is None:
            continue
        filters, maps = got
        panels.append({"kind": kind, "label": label, "filters": filters, "maps": maps,
                       "image": splits.test_x[SAMPLE_INDEX].float().cpu(),
                       "target": int(splits.test_y[SAMPLE_INDEX]), **map_stats(maps, filters)})
    return panels


# ------------------------------------------------------------------ the analysis
def compute(ctx) -> None:
    from bnlab.figures.best_net import plot_inside, plot_tradeoff  # matplotlib: loaded only when drawing

    runs = collect_runs(ctx.study, ctx.run_root)  # labels: what differs from the base (StudyPlan.label)
    runs["bn_value"] = [spec.bn for spec in ctx.study.runs]
    cands = candidate_table(runs)
    sd, _ = run_spread(cands, ctx.extra["val_size"])
    cands["pareto"] = cands.label.isin(pareto_front(cands))
    cands["best"] = cands.label == choose_best(cands, sd)["label"]
    cands.to_csv(ctx.out / CANDIDATES_CSV, index=False)
    plot_tradeoff(cands, ctx.out / TRADEOFF_PNG, title=ctx.study.title, dataset_note=ctx.where)
    panels = _look_inside(ctx, cands, runs)
    pd.DataFrame([[p[k] for k in INSIDE_COLUMNS] for p in panels], columns=INSIDE_COLUMNS).to_csv(
        ctx.out / INSIDE_CSV, index=False)
    if panels:
        plot_inside(panels, ctx.out / INSIDE_PNG, dataset_note=ctx.where)


def against_base(cands: pd.DataFrame, sd: float) -> list[str]:
    """Each choice against the base setting on validation accuracy, beyond two standard errors or not."""
    base = cands[(cands.label == "base") & cands.val_acc.notna()]
    if not len(base) or not math.isfinite(sd):
        return []
    b = base.iloc[0]
    parts = []
    others = cands[cands.val_acc.notna() & (cands.label != "base")].sort_values("val_acc", ascending=False)
    for r in others.itertuples():
        diff, se = r.val_acc - b.val_acc, difference_se(sd, r.ok, b.ok)
        verdict = "within noise" if abs(diff) <= 2 * se else ("better" if diff > 0 else "worse")
        parts.append(f"{r.label} {100 * diff:+.1f} ({verdict})")
    better = sum("(better)" in p for p in parts)
    worse = sum("(worse)" in p for p in parts)
    return [f"Each choice against the base ({fmt_pct(b.val_acc)}% {name('final_val_acc')}), in points: "
            + "; ".join(parts) + f". {better} choice(s) beat the base beyond two standard errors, {worse} fall "
            "below it."]


def findings(cands: pd.DataFrame, sd: float, spread_source: str, best_structure: str,
             inside: pd.DataFrame) -> list[str]:
    out = []
    done = cands[cands.val_acc.notna()]
    if not len(done):
        return [f"None of the {len(cands)} candidates finished: there is no best network to report."]
    pick = choose_best(cands, sd)
    top = cands[cands.label == pick["label"]].iloc[0]
    out.append(f"Of {len(cands)} candidates, the best on {name('final_val_acc')} is '{top.label}': {best_structure}. "
               f"Its test error is {fmt_pct(1 - top.test_acc)}% (test accuracy {fmt_pct(top.test_acc)}%, "
               f"{name('final_val_acc')} {fmt_pct(top.val_acc)}%, mean of {top.ok} run{'s' if top.ok > 1 else ''}) "
               f"with {top.parameters:,} parameters and {top.steps:,} steps.")
    noise = f"one run's {name('final_val_acc')} varies by {100 * sd:.2f} points, from {spread_source}"
    if pick["close"]:
        out.append(f"It is not singled out: {len(pick['close'])} other candidate(s) lie within two standard errors "
                   f"of it ({', '.join(repr(c) for c in pick['close'])}); {noise}.")
    else:
        out.append(f"Every other candidate is more than two standard errors below it; {noise}.")
    out.extend(against_base(cands, sd))
    front = cands[cands.pareto].sort_values("parameters")
    out.append("On the trade-off between test accuracy and size, the Pareto front (no candidate both smaller and "
               "more accurate) holds " + "; ".join(f"'{r.label}' ({r.parameters:,} parameters, "
                                                  f"{fmt_pct(r.test_acc)}%)" for r in front.itertuples()) + ".")
    smallest = done[done.test_acc >= top.test_acc - 0.01].sort_values("parameters").iloc[0]
    if smallest.parameters < top.parameters:
        out.append(f"The smallest candidate within one point of the best's test accuracy is '{smallest.label}', "
                   f"with {smallest.parameters / top.parameters:.2g} times its parameters "
                   f"({fmt_pct(smallest.test_acc)}%).")
    else:
        out.append("No smaller candidate comes within one point of the best's test accuracy.")
    diverged = cands[cands.diverged > 0]
    if len(diverged):
        out.append("Diverged: " + ", ".join(f"'{r.label}' ({r.diverged} of {r.runs} runs)"
                                            for r in diverged.itertuples()) + "; their rows are marked.")
    if len(inside) == 2:
        w, wo = (inside[inside.kind == k].iloc[0] for k in ("with BN", "without BN"))
        out.append(f"Inside the networks (test image {SAMPLE_INDEX}, class {w.target}): after the first conv layer "
                   f"{w.dead} of {w.channels} feature maps are zero everywhere with batch norm ('{w.label}') and "
                   f"{wo.dead} of {wo.channels} without ('{wo.label}'), with mean absolute activations "
                   f"{w.mean_abs:.3g} and {wo.mean_abs:.3g}. The first-layer filters' L2 norms span "
                   f"{w.norm_min:.3g}-{w.norm_max:.3g} with batch norm and {wo.norm_min:.3g}-{wo.norm_max:.3g} "
                   "without. With batch norm a filter's norm does not set the scale of its feature map (batch "
                   "norm divides each map by its spread over the batch, Ioffe & Szegedy 2015); without it, it does.")
    return out


def fragment(ctx) -> dict:
    cands = pd.read_csv(ctx.out / CANDIDATES_CSV)
    inside = pd.read_csv(ctx.out / INSIDE_CSV)
    sd, source = run_spread(cands, ctx.extra["val_size"])
    best = cands[cands.best]
    best_structure = ""
    if len(best):
        spec = next(s for s in ctx.study.runs if s.relative_dir() == best.run_dir.iloc[0])
        best_structure = structure(spec.as_strings())
    rows = [[i, r.label + (" (best)" if r.best else "") + (" *" if r.pareto else ""),
             f"{r.parameters:,}", fmt_pct(1 - r.test_acc) if math.isfinite(r.test_acc) else "—",
             fmt_pct(r.val_acc) if math.isfinite(r.val_acc) else "—", f"{r.train_seconds:.1f}", f"{r.steps:,}",
             f"{r.ok}/{r.runs}"] for i, r in enumerate(cands.itertuples(), start=1)]
    figures = [figure(TRADEOFF_PNG, f"Every candidate {ctx.where}: test accuracy against parameters (left, log "
                                    "scale, the Pareto front joined) and against training seconds per run (right, "
                                    "timed while other jobs shared the machine: a rough cost, not a ranking); the "
                                    f"best on {name('final_val_acc')} is the star.")]
    if (ctx.out / INSIDE_PNG).exists():
        figures.append(figure(INSIDE_PNG, f"Inside the best network with batch norm and the best without "
                                          f"{ctx.where}: the first conv layer's filters (each scaled to its own "
                                          f"range) and the feature maps after it for test image {SAMPLE_INDEX}."))
    return make_fragment(
        figures=figures,
        tables=[table("Every candidate (# is its number in the figures): test error and "
                      f"{name('final_val_acc')} (means over its finished runs), parameters, training seconds "
                      "(timed while other jobs shared the machine) and optimizer steps per run. * marks the "
                      f"Pareto front of test accuracy against parameters; the best is chosen on {name('final_val_acc')}.",
                      ["#", "candidate", "parameters", "test error %", "val acc %", "train s", "steps", "runs ok"],
                      rows, diverged=[bool(d) for d in cands.diverged > 0], text=True)],
        findings=findings(cands, sd, source, best_structure, inside),
        references=["Seed 004, section 1", "He et al. 2016", "Ioffe & Szegedy 2015"],
        stats={"candidates": len(cands)})


register(Analysis(
    name="best_net", description="the best network of a search: candidates table, Pareto front, filters",
    compute=compute, fragment=fragment, reads=(METRICS, WEIGHTS), plan_params=plan_params,
    extra_inputs=extra_inputs, requires=requires))
