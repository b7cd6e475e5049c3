"""Loss landscape (seed 004; Santurkar et al. 2018): the course's band across learning rates and the probes.

The numerical work lives in bnlab.analyses.loss_landscape (band.py, summary.py), the drawing in
bnlab.figures.landscape;
this entry reads the runs, calls it and describes the section.

Measures (stats["measures"], bnlab.analyses.evidence): every number of the
summary table (landscape.csv), one entry per BN setting, named as its column:
course_loss_band (mean over steps of the max - min training loss across the
learning rates), course_grad_change, course_beta_max, and with probes
probe_loss_band (mean over probed steps of the loss range over step sizes),
probe_grad_change and probe_beta (mean effective beta-smoothness). params: the
parameters every run behind the row shares, but the seed (so bn, not lr, for
the course; the probes' runs share their lr too); seed: theirs when they share
one (this analysis bands one seed's runs), else None.
"""

from __future__ import annotations

import pandas as pd

from bnlab.analyses.collect import read_runs
from bnlab.analyses.evidence import measure
from bnlab.analyses.formats import fmt_num
from bnlab.analyses.registry import Analysis, figure, fragment, register, table
from bnlab.runfolder import PROBES, STEPS, read_json, write_json

COURSE_PNG, PROBES_PNG, TABLE_CSV = "landscape_course.png", "landscape_probes.png", "landscape.csv"
RUNS_JSON = "landscape_runs.json"  # {"course" | "probes": {bn: [run folders behind the table's row]}}
COURSE_MEASURES = ("course_loss_band", "course_grad_change", "course_beta_max")
PROBE_MEASURES = ("probe_loss_band", "probe_grad_change", "probe_beta")


def compute(ctx) -> None:
    from bnlab.analyses.loss_landscape.band import course_band, probe_band
    from bnlab.figures.landscape import plot_course_band, plot_probe_bands
    from bnlab.analyses.loss_landscape.summary import landscape_table

    runs = read_runs(ctx.folder("summary") / "runs.csv", ctx.study.axes)
    if not {"bn", "lr"} <= set(ctx.study.axes):
        raise ValueError(f"study '{ctx.study.name}': a landscape analysis needs both 'bn' and 'lr' in its grid")
    steps, probes = [], []
    behind = {"course": {}, "probes": {}}
    for r in runs.itertuples():
        folder = ctx.run_root / r.run_dir
        steps.append(pd.read_parquet(folder / STEPS).assign(bn=r.bn, run_lr=r.lr, seed=r.seed))
        behind["course"].setdefault(r.bn, []).append(r.run_dir)
        p = pd.read_parquet(folder / PROBES)
        if not p.empty:
            probes.append((r.run_dir, p.assign(bn=r.bn, run_lr=float(r.lr), run=f"lr={r.lr}, seed={r.seed}")))
    course = course_band(pd.concat(steps, ignore_index=True))
    lrs = sorted({float(x) for x in runs.lr})
    plot_course_band(course, ctx.out / COURSE_PNG, title=ctx.study.title, dataset_note=ctx.where, lrs=lrs)
    # Santurkar's probes compare BN and no BN at one learning rate: pooling the
    # rates would mix runs at different stages of training into one band.
    probe_lr = min(lrs, key=lambda lr: abs(lr - ctx.options["probe_lr"]))
    probes = [(run_dir, p) for run_dir, p in probes if p.run_lr.iloc[0] == probe_lr]
    for run_dir, p in probes:
        behind["probes"].setdefault(p.bn.iloc[0], []).append(run_dir)
    write_json(ctx.out / RUNS_JSON, behind)
    band = probe_band(pd.concat([p for _, p in probes], ignore_index=True)) if probes else None
    if band is not None:
        plot_probe_bands(band, ctx.out / PROBES_PNG, title=ctx.study.title,
                         dataset_note=f"{ctx.where}, lr={probe_lr:g}")
    landscape_table(course, band).to_csv(ctx.out / TABLE_CSV, index=False)
    print(f"{len(runs)} runs, {len(probes)} with probes")


def summary_table(frame: pd.DataFrame) -> dict:
    columns = [("bn", "BN"), ("steps", "steps"), ("course_loss_band", "loss band (course)"),
               ("course_grad_change", "grad change (course)"), ("course_beta_max", "beta max (course)"),
               ("probed_steps", "probed steps"), ("probe_loss_band", "loss band (probes)"),
               ("probe_grad_change", "grad change (probes)"), ("probe_beta", "beta (probes)")]
    columns = [(c, h) for c, h in columns if c in frame.columns]
    rows = [[str(r[c]) if c in ("bn", "steps", "probed_steps") else fmt_num(r[c], 3) for c, _ in columns]
            for _, r in frame.iterrows()]
    return table("Landscape summary, means over training steps: course-method band width across learning "
                 "rates and last-layer gradient change; Santurkar probes' band over step sizes, gradient "
                 "change and effective beta-smoothness.", [h for _, h in columns], rows)


def shared_params(specs) -> tuple[dict, int | None]:
    """The parameters (canonical text) all `specs` have in common but the seed, and their seed if they share one."""
    values = [spec.as_strings() for spec in specs]
    shared = {k: v for k, v in values[0].items() if k != "seed" and all(x[k] == v for x in values[1:])}
    seeds = {spec.seed for spec in specs}
    return shared, (seeds.pop() if len(seeds) == 1 else None)


def landscape_measures(frame: pd.DataFrame, behind: dict, study) -> dict:
    """stats["measures"]: each table column per BN setting, keyed by what the setting's runs share."""
    specs = {spec.relative_dir(): spec for spec in study.runs}
    out = {}
    for part, names in (("course", COURSE_MEASURES), ("probes", PROBE_MEASURES)):
        for name in names:
            if name not in frame.columns:
                continue
            out[name] = []
            for _, row in frame.iterrows():
                folders = behind[part].get(str(row["bn"]))
                if folders:
                    params, seed = shared_params([specs[f] for f in folders])
                    out[name].append(measure(params, seed, row[name]))
    return out


def make_fragment(ctx) -> dict:
    from bnlab.analyses.loss_landscape.summary import landscape_findings

    frame = pd.read_csv(ctx.out / TABLE_CSV, dtype={"bn": str})
    figures = [figure(COURSE_PNG, f"Course method (seed 004), {ctx.where}: per step, the band between the lowest "
                                  "and the highest training loss across the learning rates, BN and no BN; below, "
                                  "the change of the output layer's gradient between consecutive steps and its "
                                  "max across learning rates (the course's beta-smoothness).")]
    findings = landscape_findings(frame)
    if (ctx.out / PROBES_PNG).exists():
        figures.append(figure(PROBES_PNG, f"Santurkar et al. probes, {ctx.where}: every k-th step, loss and "
                                          "gradient change at w - eta*lr*g for eta in [0.5, 4] on the step's own "
                                          "batch (band over eta), and the effective beta-smoothness (max over eta "
                                          "of gradient change / step length)."))
    else:
        findings.append("No run of this study has probes (probe_every: 0), so there is no probe figure.")
    measures = landscape_measures(frame, read_json(ctx.out / RUNS_JSON), ctx.study)
    return fragment(figures=figures, tables=[summary_table(frame)], findings=findings,
                    references=["Santurkar et al. 2018"], stats={"measures": measures})


register(Analysis(
    name="landscape",
    description="loss band across learning rates and last-layer gradient change (course method), Santurkar "
                "probes' band and effective beta-smoothness; needs bn and lr in the grid",
    compute=compute, fragment=make_fragment, reads=(STEPS, PROBES), needs=("summary",),
    options={"probe_lr": {"type": "number", "exclusiveMinimum": 0, "default": 1e-3,
                          "description": "the probes compare BN and no BN at the grid's rate nearest this one"}}))
