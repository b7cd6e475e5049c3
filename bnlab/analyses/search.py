"""A staged search, told as one story (seed 001 section 4): every stage's validation accuracy against the
searched value, the best of each stage, and the final run trained with the chosen value.

It belongs to the last stage: a study whose runs write a searched value as best-<study> or
draw<i>-<study> (bnlab/search.py). The earlier stages are found by following those references back, and
read from their candidates tables (results/picks/<study>/search.csv), the same tables the runs trained from.

Noise: with one run per value, the standard error of a validation accuracy p on n images is
sqrt(p (1 - p) / n); two of them is the difference this section calls beyond noise.
"""

from __future__ import annotations

import math

import pandas as pd

from bnlab.analyses.evidence import binomial_se
from bnlab.analyses.measures import name
from bnlab.analyses.formats import fmt_num, fmt_pct
from bnlab.analyses.registry import Analysis, figure, register, table
from bnlab.analyses.registry import fragment as make_fragment
from bnlab.data.limits import val_size_for
from bnlab.search import METRIC, SEARCH_TABLE, best, candidates, earlier_stages, scores, searched_params

STAGES_CSV, FIGURE_PNG = "stages.csv", "search.png"


def plan_params(plan, study) -> dict:
    """The earlier stages (earliest first), the searched parameter and the validation set's size."""
    return {"stages": earlier_stages(plan.studies, study.name), "params": searched_params(study.runs),
            "val_size": val_size_for(plan.config["data"], study.runs[0].dataset) if study.runs else 0}


def extra_inputs(plan, study) -> list[str]:
    """Below the results folder: each earlier stage's candidates table."""
    return [f"picks/{stage}/{SEARCH_TABLE}" for stage in earlier_stages(plan.studies, study.name)]


def requires(study) -> str | None:
    if not searched_params(study.runs):
        return ("the search analysis is for the last stage of a search: runs that write a searched value as "
                "best-<study> or draw<i>-<study>; this study has none")
    return None


def compute(ctx) -> None:
    from bnlab.figures.search import plot_search  # matplotlib: loaded only when drawing

    frames = [pd.read_csv(ctx.results / "picks" / stage / SEARCH_TABLE).assign(stage=i + 1, study=stage)
              for i, stage in enumerate(ctx.extra["stages"])]
    own = candidates(ctx.study.runs, ctx.run_root).assign(stage=len(frames) + 1, study=ctx.study.name)
    rows = pd.concat(frames + [own], ignore_index=True)
    rows.to_csv(ctx.out / STAGES_CSV, index=False)
    param = ctx.extra["params"][0]
    searched = [s for s in stage_summaries(rows, param, ctx.extra["val_size"])[:-1] if math.isfinite(s["se"])]
    plot_search(rows, param, ctx.out / FIGURE_PNG, title=ctx.study.title, dataset_note=ctx.where,
                noise=2 * max(searched, key=lambda s: s["score"])["se"] if searched else None)


def stage_summaries(rows: pd.DataFrame, param: str, val_size: int) -> list[dict]:
    """Per stage: study, runs, range tried, best value and score, values within two standard errors of it."""
    out = []
    for stage, group in rows.groupby("stage", sort=True):
        by_value = scores(group, param)
        try:
            top = best(group, param)
        except ValueError:
            top = {"value": math.nan, "score": math.nan}
        se = binomial_se(top["score"], val_size) if math.isfinite(top["score"]) else math.nan
        close = int((by_value.score >= top["score"] - 2 * se).sum()) if math.isfinite(se) else 0
        ok = group[group.status == "ok"]
        out.append({"stage": int(stage), "study": group.study.iloc[0], "runs": len(group),
                    "values": int(by_value.value.nunique()), "lo": float(group[param].min()),
                    "hi": float(group[param].max()), "best": top["value"], "score": top["score"], "se": se,
                    "close": close, "diverged": int((group.status != "ok").sum()),
                    "test": float(ok.loc[ok[METRIC].idxmax(), "final_test_acc"]) if len(ok) else math.nan,
                    "worst": float(by_value.score[by_value.score > -math.inf].min()) if len(ok) else math.nan,
                    "worst_value": float(by_value.value[by_value.score.idxmin()]) if len(ok) else math.nan})
    return out


def measures(stages: list[dict]) -> dict:
    """Numbers the config's expectations can judge (metric search.<name>), as fractions of accuracy."""
    out = {}
    searches = [s for s in stages[:-1] if math.isfinite(s["score"])]
    if len(searches) >= 2:  # what the finer stage found beyond the coarse one
        out["fine_gain"] = [{"params": {}, "seed": None, "value": searches[-1]["score"] - searches[0]["score"]}]
    final = stages[-1]
    if searches and math.isfinite(final["score"]):  # the final training against the same value in its stage
        out["final_gain"] = [{"params": {}, "seed": None, "value": final["score"] - searches[-1]["score"]}]
    return out


def findings(stages: list[dict], param: str) -> list[str]:
    sentences = []
    *searches, final = stages
    for s in searches:
        if not math.isfinite(s["score"]):
            sentences.append(f"Stage {s['stage']} ('{s['study']}'): no run finished, so it picked nothing.")
            continue
        noise = (f"{s['close']} of its {s['values']} values lie within two standard errors "
                 f"(±{200 * s['se']:.1f} points) of the best, so "
                 + ("the stage singles it out" if s["close"] == 1 else
                    "the stage cannot tell them apart: the choice among them is noise"))
        falls = (f"; the lowest, {fmt_pct(s['worst'])}%, is at {param} = {fmt_num(s['worst_value'])}"
                 if math.isfinite(s["worst"]) and s["worst_value"] != s["best"] else "")
        sentences.append(f"Stage {s['stage']} ('{s['study']}', {s['values']} values of {param} on "
                         f"[{fmt_num(s['lo'])}, {fmt_num(s['hi'])}]): the best is {param} = {fmt_num(s['best'])} "
                         f"with {fmt_pct(s['score'])}% {name(METRIC)}{falls}. {noise}."
                         + (f" {s['diverged']} run(s) diverged." if s["diverged"] else ""))
    done = [s for s in searches if math.isfinite(s["score"])]
    if len(done) >= 2:
        first, last = done[0], done[-1]
        gain = last["score"] - first["score"]
        se = math.hypot(first["se"], last["se"])
        verdict = ("beyond two standard errors: the finer stage found a better value" if gain > 2 * se else
                   "within two standard errors: the finer stage found nothing the coarse grid had not"
                   if abs(gain) <= 2 * se else "below the coarse best by more than two standard errors")
        sentences.append(f"The finer stage's best is {100 * gain:+.1f} points against the coarse grid's, "
                         f"{verdict}.")
    if math.isfinite(final["score"]) and done:
        gain = final["score"] - done[-1]["score"]
        se = math.hypot(final["se"], done[-1]["se"])
        sentences.append(f"Trained longer with {param} = {fmt_num(final['best'])} ('{final['study']}'), the network "
                         f"reaches {fmt_pct(final['score'])}% {name(METRIC)} and {fmt_pct(final['test'])}% "
                         f"{name('final_test_acc')}, {100 * gain:+.1f} points of {name(METRIC)} against the same value in "
                         f"its stage ({'beyond' if abs(gain) > 2 * se else 'within'} two standard errors).")
    elif not math.isfinite(final["score"]):
        sentences.append(f"The final run ('{final['study']}') did not finish: no accuracy to report.")
    return sentences


def fragment(ctx) -> dict:
    rows = pd.read_csv(ctx.out / STAGES_CSV)
    param = ctx.extra["params"][0]
    stages = stage_summaries(rows, param, ctx.extra["val_size"])
    table_rows = [[s["stage"], s["study"], s["runs"],
                   fmt_num(s["lo"]) if s["lo"] == s["hi"] else f"{fmt_num(s['lo'])} – {fmt_num(s['hi'])}",
                   fmt_num(s["best"]), fmt_pct(s["score"]), fmt_pct(s["test"]), s["close"]] for s in stages]
    return make_fragment(
        figures=[figure(FIGURE_PNG, f"{name(METRIC)[0].upper()}{name(METRIC)[1:]} against {param} {ctx.where}: one point per run "
                                    "of each search stage, the best of each stage circled, the final run (trained "
                                    "longer) as a star; the whole range (left) and the last search stage's "
                                    "range (right). The grey band spans two standard errors below the best "
                                    "search run: differences inside it are within the noise of one run.")],
        tables=[table(f"The search stage by stage: the range of {param} tried, the best value (highest "
                      f"{name(METRIC)}) and its accuracies, and how many values lie within two standard "
                      "errors of the best. The last row is the final training with the chosen value.",
                      ["stage", "study", "runs", f"{param} tried", "best", "val. acc. %", "test acc. %",
                       "within 2 s.e."], table_rows,
                      [not math.isfinite(s["score"]) for s in stages])],
        findings=findings(stages, param), references=["Seed 001, section 4"],
        stats={"measures": measures(stages)})


register(Analysis(
    name="search",
    description="a staged search (best-<study> / draw<i>-<study>, seed 001 section 4): validation accuracy "
                "against the searched value for every stage, the best of each, the final run",
    compute=compute, fragment=fragment, plan_params=plan_params, extra_inputs=extra_inputs, requires=requires))
