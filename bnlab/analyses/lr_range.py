"""LR range test: the loss-vs-lr curves of a study and the lr_min / lr_max read off them.

Two ways, both from seed 003 problem 2: a grid of constant-rate runs (the
seed's 10 rates from 1e-9 to 1e1, final training loss of each) and one
exponential sweep (lr_schedule range_test: every step's loss at its rate).
"""

from __future__ import annotations

import pandas as pd

from bnlab.analyses.formats import fmt_num
from bnlab.analyses.registry import Analysis, figure, register, table
from bnlab.analyses.registry import fragment as make_fragment
from bnlab.lr_picks import grid_curve, picks, range_test_runs, sweep_curve  # noqa: F401  (re-exported)
from bnlab.runfolder import HISTORY, STEPS
from bnlab.schedules import PICKS_TABLE


def lr_range_findings(table: pd.DataFrame) -> list[str]:
    sentences = []
    for _, r in table.iterrows():
        if r["error"]:
            sentences.append(f"The {r['curve']} range test gave no bounds: {r['error']}")
            continue
        sentences.append(f"The {r['curve']} range test puts the lowest loss at lr {r['lr_at_min']:.2g}; the rule "
                         f"picks lr_min = {r['lr_min']:.2g} and lr_max = {r['lr_max']:.2g}"
                         + (f"; the loss blew up from lr {r['lr_blowup']:.2g}." if pd.notna(r["lr_blowup"]) else "."))
    return sentences


def lr_range_answers(table: pd.DataFrame) -> list[str]:
    """The study's question in words: where the loss starts falling and where it blows up, per way of testing,
    and how far apart the two ways put lr_max."""
    done = table[table.error == ""]
    if done.empty:
        return []
    parts = []
    for _, r in done.iterrows():
        blowup = (f"it blows up from lr {r['lr_blowup']:.2g}" if pd.notna(r["lr_blowup"])
                  else "it did not blow up within the range")
        parts.append(f"the {r['curve']} test's loss starts falling (by a tenth of its drop) at lr {r['lr_min']:.2g} and is lowest at "
                     f"{r['lr_at_min']:.2g}; {blowup}")
    joined = "; ".join(parts)
    text = "Where does the loss start falling, and where does it blow up? " + joined[:1].upper() + joined[1:] + "."
    if len(done) == 2:
        a, b = done.iloc[0], done.iloc[1]
        ratio = max(a["lr_max"], b["lr_max"]) / min(a["lr_max"], b["lr_max"])
        text += (f" The two ways give lr_max {a['lr_max']:.2g} ({a['curve']}) and {b['lr_max']:.2g} ({b['curve']}), "
                 f"a factor {ratio:.1f} apart.")
    return [text]


# ------------------------------------------------------- the registry entry
# The picks table, as the lr_picks job writes it for training (it is not read from here).
PICKS_CSV, FIGURE_PNG = PICKS_TABLE, "lr_range.png"


def compute(ctx) -> None:
    """The same curves and picks the lr_picks job computes for training (bnlab.lr_picks), drawn and tabled."""
    from bnlab.figures.lr_range import plot_lr_range  # matplotlib: loaded only when drawing

    runs = range_test_runs(ctx.study.runs, ctx.run_root)
    grid, sweep = grid_curve(runs, ctx.run_root), sweep_curve(runs, ctx.run_root)
    found = picks(grid, sweep)
    found.to_csv(ctx.out / PICKS_CSV, index=False)
    plot_lr_range(grid, sweep, found, ctx.out / FIGURE_PNG, title=ctx.study.title, dataset_note=ctx.where)
    print(found.to_string())


def fragment(ctx) -> dict:
    # empty numbers (no blow-up seen) read as NaN; empty texts as ""
    found = pd.read_csv(ctx.out / PICKS_CSV, dtype={"error": str, "rule": str})
    found = found.assign(error=found.error.fillna(""), rule=found.rule.fillna(""))
    rows = [[r["curve"], fmt_num(r["lr_at_min"], 2), fmt_num(r["lr_min"], 2), fmt_num(r["lr_max"], 2),
             fmt_num(r["lr_blowup"], 2) or "—"] for _, r in found.iterrows()]
    return make_fragment(
        figures=[figure(FIGURE_PNG, f"LR range test {ctx.where}: final training loss of each constant-rate run "
                                    "(left) and every step's loss of one exponential sweep (right), with the "
                                    "picked lr_min and lr_max.")],
        tables=[table("LR range test picks. Rule: " + (found.rule.iloc[0] if len(found) else ""),
                      ["curve", "lowest loss at lr", "lr_min", "lr_max", "blew up from lr"], rows,
                      [bool(e) for e in found.error])],
        findings=lr_range_findings(found), references=["Smith 2017"],
        stats={"answers": lr_range_answers(found)})


register(Analysis(
    name="lr_range",
    description="LR range test: loss against lr for constant-rate runs and a range_test sweep, lr_min / lr_max "
                "picked (seed 003 p. 2; Smith 2017); studies with lr: pick-<study> train with its picks",
    compute=compute, fragment=fragment, reads=(HISTORY, STEPS)))
