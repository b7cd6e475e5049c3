"""Bands across runs and across probe step sizes: the data behind the landscape figures (pandas only).

Course method (seed 004, sections 2.3-2.4): one model per learning rate (e.g.
Adam with 1e-3, 2e-3, 1e-4, 5e-4), BN and no-BN. Per step and per group
(default: the `bn` column):
- `loss_band`: max, min and median of the training loss across the
  learning rates (the course's max_curve / min_curve, drawn with fill_between);
- `grad_predictiveness_band`: the same for `last_grad_change`, the l2 distance
  between the last layer's gradients of consecutive steps (NaN at step 1);
- `beta_smoothness`: the course's "effective beta-smoothness", the max of
  last_grad_change across the learning rates (in gradient units: the course
  does not divide by the distance moved).

Runs are step tables (a run folder's steps.parquet: step, epoch, loss,
grad_norm, lr[, last_grad_change]) labelled by group and run. Pass them as a
mapping {(bn, lr): steps_df} (stack_runs adds the key columns, by default `bn`
and `run_lr`: the run's configured learning rate, kept apart from the per-step
`lr` column) or as one long DataFrame that already has both columns.

Runs stop early when they diverge (the trainer's table ends at the step whose
loss is not finite). Non-finite values count as missing. With steps="common"
(the default) a band has only the steps at which every run of its group has a
finite value, so it ends where the first run of the group stopped; steps="any"
keeps every step that has at least one run, with n_runs saying how many. Where
each run stopped is in run_ends(), and in every band's attrs["ends"] (records).

Santurkar et al. probes (bnlab.train.probes): `probe_band` turns per-run probe tables
(step, eta, step_size, loss, grad_change, beta) into, per group and step, the
band over eta (loss_min/max, grad_change_min/max) and beta_max.

Smoothing for display is the figure's (bnlab.figures.landscape.smooth); the bands
themselves are never smoothed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

RUN_KEYS = ("bn", "run_lr")
GRAD_CHANGE = "last_grad_change"


def stack_runs(runs: Mapping | Iterable[pd.DataFrame] | pd.DataFrame,
               *, keys: Sequence[str] = RUN_KEYS) -> pd.DataFrame:
    """One long table from per-run tables.

    runs: {key: df} with key a tuple of labels (matched to `keys` in order) or
    a single label (the first of `keys`); or DataFrames that already carry
    their labels; or one long DataFrame (returned as a copy).
    """
    if isinstance(runs, pd.DataFrame):
        return runs.copy()
    parts = []
    if isinstance(runs, Mapping):
        for key, df in runs.items():
            vals = key if isinstance(key, tuple) else (key,)
            if len(vals) > len(keys):
                raise ValueError(f"run key {key!r} has more labels than key columns {tuple(keys)}")
            df = df.copy()
            for col, val in zip(keys, vals):
                df[col] = val
            parts.append(df)
    else:
        parts = [df.copy() for df in runs]
    if not parts:
        raise ValueError("no runs given")
    return pd.concat(parts, ignore_index=True)


def _long(runs, cols: Sequence[str], keys: Sequence[str] = RUN_KEYS) -> pd.DataFrame:
    df = stack_runs(runs, keys=keys)
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"run tables lack column(s) {missing}; they have {list(df.columns)}")
    return df


def _finite(s: pd.Series) -> pd.Series:
    return np.isfinite(pd.to_numeric(s, errors="coerce").astype(float))


def run_ends(runs, *, group: str = "bn", run: str = "run_lr", value: str = "loss") -> pd.DataFrame:
    """Where each run's table ends: one row per (group, run).

    Columns: group, run, last_step (last step with a finite `value`), end_step
    (last step in the table), diverged (the value at end_step is not finite),
    stopped_early (last_step before the group's longest run ends).
    """
    df = _long(runs, [group, run, "step", value], keys=(group, run))
    df = df.sort_values([group, run, "step"], kind="stable")
    rows = []
    for (g, r), d in df.groupby([group, run], sort=False):
        ok = d[_finite(d[value])]
        rows.append({group: g, run: r,
                     "last_step": int(ok.step.max()) if len(ok) else 0,
                     "end_step": int(d.step.max()),
                     "diverged": not bool(_finite(d[value]).iloc[-1])})
    ends = pd.DataFrame(rows, columns=[group, run, "last_step", "end_step", "diverged"])
    longest = ends.groupby(group, sort=False).end_step.transform("max")
    ends["stopped_early"] = ends.last_step < longest
    return ends


def _band(runs, value: str, *, group: str, run: str, steps: str, stats: Sequence[str]) -> pd.DataFrame:
    if steps not in ("common", "any"):
        raise ValueError(f"steps must be 'common' or 'any', got {steps!r}")
    df = _long(runs, [group, run, "step", value], keys=(group, run))
    if df.duplicated([group, run, "step"]).any():
        raise ValueError(f"several rows for one ({group}, {run}, step): label runs uniquely")
    out = []
    for g, d in df.groupby(group, sort=False):
        n_runs = d[run].nunique()
        ok = d[_finite(d[value])]
        wide = ok.pivot(index="step", columns=run, values=value).astype(float).sort_index()
        res = pd.DataFrame({group: g, "step": wide.index.astype(int)})
        if "epoch" in ok.columns:
            res["epoch"] = ok.groupby("step").epoch.first().reindex(wide.index).to_numpy()
        vals = wide.to_numpy()
        count = np.isfinite(vals).sum(axis=1)
        has = count > 0
        with np.errstate(all="ignore"):
            for stat in stats:
                col = np.full(len(wide), np.nan)
                if has.any():
                    fn = {"min": np.nanmin, "max": np.nanmax, "median": np.nanmedian}[stat]
                    col[has] = fn(vals[has], axis=1)
                res[stat] = col
        if "min" in stats or "max" in stats:
            cols = np.asarray(wide.columns)
            for stat, arg in (("min", np.nanargmin), ("max", np.nanargmax)):
                if stat in stats:
                    at = np.full(len(wide), None, dtype=object)
                    if has.any():
                        at[has] = cols[arg(vals[has], axis=1)]
                    res[f"{run}_at_{stat}"] = at
        res["n_runs"] = count
        res["runs_in_group"] = n_runs
        if steps == "common":
            res = res[res.n_runs == n_runs]
        out.append(res)
    band = pd.concat(out, ignore_index=True) if out else pd.DataFrame()
    band.attrs["ends"] = run_ends(df, group=group, run=run, value=value).to_dict("records")
    band.attrs["value"] = value
    return band


def loss_band(runs, group: str = "bn", *, run: str = "run_lr", steps: str = "common",
              value: str = "loss") -> pd.DataFrame:
    """Per group and step: min, max, median of `value` across the runs (learning rates).

    Columns: group, step[, epoch], min, max, median, {run}_at_min, {run}_at_max,
    n_runs, runs_in_group; attrs["ends"]: run_ends records.
    """
    return _band(runs, value, group=group, run=run, steps=steps, stats=("min", "max", "median"))


def grad_predictiveness_band(runs, group: str = "bn", *, run: str = "run_lr", steps: str = "common",
                             value: str = GRAD_CHANGE) -> pd.DataFrame:
    """Course gradient predictiveness: loss_band of last_grad_change (||g_t - g_(t-1)|| of the last layer)."""
    return _band(runs, value, group=group, run=run, steps=steps, stats=("min", "max", "median"))


def beta_smoothness(runs, group: str = "bn", *, run: str = "run_lr", steps: str = "common",
                    value: str = GRAD_CHANGE) -> pd.DataFrame:
    """Course "effective beta-smoothness": per group and step, max of last_grad_change across the runs.

    Columns: group, step[, epoch], beta, {run}_at_max, n_runs, runs_in_group.
    """
    band = _band(runs, value, group=group, run=run, steps=steps, stats=("max",))
    return band.rename(columns={"max": "beta"})


def course_band(runs, group: str = "bn", *, run: str = "run_lr", steps: str = "common") -> pd.DataFrame:
    """Everything the course figure needs, one row per (group, step).

    Columns: group, step, epoch, loss_min, loss_max, loss_median, loss_n_runs,
    and, when the tables have last_grad_change, grad_change_min/max/median,
    grad_change_n_runs and beta. Outer join on steps (the gradient change has
    no value at step 1). attrs: ends (where runs stopped, by loss), runs
    ({group: [run labels]}), group, run.
    """
    df = _long(runs, [group, run, "step", "loss"], keys=(group, run))
    keep = ["min", "max", "median", "n_runs"]

    def prefixed(b: pd.DataFrame, prefix: str) -> pd.DataFrame:
        cols = [group, "step"] + (["epoch"] if "epoch" in b.columns else [])
        return b[cols + keep].rename(columns={k: f"{prefix}_{k}" for k in keep})

    lb = loss_band(df, group, run=run, steps=steps)
    out = prefixed(lb, "loss")
    if GRAD_CHANGE in df.columns:
        gb = prefixed(grad_predictiveness_band(df, group, run=run, steps=steps), "grad_change")
        beta = beta_smoothness(df, group, run=run, steps=steps)[[group, "step", "beta"]]
        out = out.merge(gb, on=[group, "step"], how="outer", suffixes=("", "_g"))
        if "epoch_g" in out.columns:
            out["epoch"] = out["epoch"].combine_first(out.pop("epoch_g"))
        out = out.merge(beta, on=[group, "step"], how="left")
        order = {g: i for i, g in enumerate(dict.fromkeys(df[group]))}
        out = out.sort_values([group, "step"], key=lambda s: s.map(order) if s.name == group else s,
                              kind="stable").reset_index(drop=True)
    out.attrs.update({"ends": lb.attrs["ends"], "group": group, "run": run,
                      "runs": {g: list(dict.fromkeys(d[run])) for g, d in df.groupby(group, sort=False)}})
    return out


def probe_band(probes_by_run, group: str = "bn", *, run: str = "run") -> pd.DataFrame:
    """Santurkar probes per group and step: band over eta (and over runs, if a group holds several).

    probes_by_run: {bn: probes_df}, {(bn, run): probes_df} or one long table
    with columns group, step, eta, loss, grad_change, beta. Non-finite values
    are ignored (as summarise_probe does). Columns: group, step[, epoch],
    loss_min, loss_max, grad_change_min, grad_change_max, beta_max, n_etas,
    eta_min, eta_max, n_runs.
    """
    df = _long(probes_by_run, [group, "step", "eta", "loss", "grad_change", "beta"], keys=(group, run))
    for c in ("loss", "grad_change", "beta"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float).where(_finite(df[c]))
    by = df.groupby([group, "step"], sort=False)
    out = pd.DataFrame({
        "loss_min": by.loss.min(), "loss_max": by.loss.max(),
        "grad_change_min": by.grad_change.min(), "grad_change_max": by.grad_change.max(),
        "beta_max": by.beta.max(), "n_etas": by.eta.nunique(), "eta_min": by.eta.min(), "eta_max": by.eta.max(),
        "n_runs": by[run].nunique() if run in df.columns else 1,
    })
    if "epoch" in df.columns:
        out.insert(0, "epoch", by.epoch.first())
    out = out.reset_index()
    order = {g: i for i, g in enumerate(dict.fromkeys(df[group]))}
    out = out.sort_values([group, "step"], key=lambda s: s.map(order) if s.name == group else s,
                          kind="stable").reset_index(drop=True)
    return out
