"""Snakemake script: loss-landscape bands (course method and Santurkar probes) of one study."""

import sys
from pathlib import Path

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

import pandas as pd  # noqa: E402

from bnlab.analysis.collect import read_runs  # noqa: E402
from bnlab.landscape.band import course_band, probe_band  # noqa: E402
from bnlab.landscape.figures import plot_course_band, plot_probe_bands  # noqa: E402
from bnlab.landscape.summary import landscape_table  # noqa: E402

params = snakemake.params  # noqa: F821
out = snakemake.output  # noqa: F821
runs = read_runs(snakemake.input.runs, params.axes)  # noqa: F821
if not {"bn", "lr"} <= set(params.axes):
    raise ValueError("a landscape study needs both 'bn' and 'lr' in its grid")
steps, probes = [], []
for r in runs.itertuples():
    folder = Path(params.run_root) / r.run_dir
    s = pd.read_parquet(folder / "steps.parquet").assign(bn=r.bn, run_lr=r.lr, seed=r.seed)
    steps.append(s)
    p = pd.read_parquet(folder / "probes.parquet")
    if not p.empty:
        probes.append(p.assign(bn=r.bn, run_lr=float(r.lr), run=f"lr={r.lr}, seed={r.seed}"))
course = course_band(pd.concat(steps, ignore_index=True))
lrs = sorted({float(x) for x in runs.lr})
plot_course_band(course, out.course, title=params.title, dataset_note=params.dataset_note, lrs=lrs)
# Santurkar's probes compare BN and no BN at one learning rate: pooling the
# rates would mix runs at different stages of training into one band.
probe_lr = min(lrs, key=lambda lr: abs(lr - 1e-3))
probes = [p for p in probes if p.run_lr.iloc[0] == probe_lr]
band = probe_band(pd.concat(probes, ignore_index=True)) if probes else None
if band is not None:
    plot_probe_bands(band, out.probes, title=params.title, dataset_note=f"{params.dataset_note}, lr={probe_lr:g}")
else:
    from bnlab.figures.style import apply_style, plt

    apply_style()
    fig, ax = plt.subplots(figsize=(7, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, "no run of this study has probes (probe_every: 0)", ha="center", va="center")
    fig.savefig(out.probes)
landscape_table(course, band).to_csv(out.table, index=False)
print(f"{len(runs)} runs, {len(probes)} with probes")
