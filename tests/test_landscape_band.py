"""Course-method bands across learning rates and the Santurkar probe band, on synthetic tables with known answers."""

import math

import numpy as np
import pandas as pd
import pytest

from bnlab.analyses.loss_landscape import (beta_smoothness, course_band, grad_predictiveness_band, loss_band, probe_band,
                             run_ends, stack_runs, summarise_probe)

LRS = [1e-3, 2e-3, 1e-4, 5e-4]
STEPS = 10


def steps_table(lr, bn, n=STEPS, diverge_at=None):
    """loss = 10*lr*1000 + step/100 (+1 with BN): known order across lrs; grad change = lr*1e3*step."""
    step = np.arange(1, n + 1)
    loss = lr * 1e4 + step / 100 + (1.0 if bn == "hidden" else 0.0)
    change = lr * 1e3 * step
    change[0] = np.nan  # no previous gradient at step 1
    if diverge_at is not None:  # the trainer's table ends at the non-finite step
        step, loss, change = step[:diverge_at], loss[:diverge_at].copy(), change[:diverge_at].copy()
        loss[-1] = np.nan
    return pd.DataFrame({"step": step, "epoch": step / 5, "loss": loss, "grad_norm": 1.0, "lr": lr,
                         "last_grad_change": change})


def runs(diverge=None):
    return {(bn, lr): steps_table(lr, bn, diverge_at=diverge if (bn, lr) == ("none", 2e-3) else None)
            for bn in ("none", "hidden") for lr in LRS}


def test_loss_band_max_min_median():
    band = loss_band(runs())
    assert list(dict.fromkeys(band.bn)) == ["none", "hidden"]
    none = band[band.bn == "none"].set_index("step")
    assert list(none.index) == list(range(1, STEPS + 1))
    s = none.index.to_numpy()
    assert np.allclose(none["max"], 20 + s / 100)  # lr 2e-3
    assert np.allclose(none["min"], 1 + s / 100)  # lr 1e-4
    assert np.allclose(none["median"], (5 + 10) / 2 + s / 100)
    assert (none.run_lr_at_max == 2e-3).all() and (none.run_lr_at_min == 1e-4).all()
    hidden = band[band.bn == "hidden"]
    assert np.allclose(hidden["min"], 2 + hidden.step / 100)
    assert (band.n_runs == 4).all()
    assert np.allclose(none.epoch, s / 5)


def test_diverged_run_shortens_its_group_and_is_marked():
    data = runs(diverge=6)  # no-BN lr 2e-3: finite up to step 5, NaN at 6, table ends
    band = loss_band(data)
    none = band[band.bn == "none"]
    assert none.step.max() == 5  # only steps every lr has
    assert np.allclose(none["max"], 20 + none.step / 100)
    assert band[band.bn == "hidden"].step.max() == STEPS  # the other group is untouched
    ends = pd.DataFrame(band.attrs["ends"]).set_index(["bn", "run_lr"])
    assert ends.loc[("none", 2e-3)].to_dict() == {"last_step": 5, "end_step": 6, "diverged": True,
                                                  "stopped_early": True}
    assert not ends.drop(("none", 2e-3)).stopped_early.any()
    assert not ends.drop(("none", 2e-3)).diverged.any()
    # steps="any": the band goes on with the remaining runs, n_runs says how many
    anyb = loss_band(data, steps="any")
    tail = anyb[(anyb.bn == "none") & (anyb.step > 5)]
    assert list(tail.step) == list(range(6, STEPS + 1)) and (tail.n_runs == 3).all()
    assert np.allclose(tail["max"], 10 + tail.step / 100)  # lr 1e-3 is now the max
    assert run_ends(data).equals(pd.DataFrame(band.attrs["ends"]))


def test_grad_predictiveness_and_beta_are_max_across_lrs():
    data = runs()
    gp = grad_predictiveness_band(data)
    assert gp.step.min() == 2  # step 1 has no previous gradient
    hidden = gp[gp.bn == "hidden"]
    assert np.allclose(hidden["max"], 2 * hidden.step) and np.allclose(hidden["min"], 0.1 * hidden.step)
    beta = beta_smoothness(data)
    assert np.allclose(beta.beta, 2 * beta.step)  # lr 2e-3 has the largest change
    assert np.allclose(beta.beta.to_numpy(), gp["max"].to_numpy())
    assert (beta.run_lr_at_max == 2e-3).all()


def test_course_band_combines_and_tolerates_missing_grad_change():
    data = runs(diverge=6)
    cb = course_band(data)
    assert {"loss_min", "loss_max", "loss_median", "grad_change_min", "grad_change_max", "beta"} <= set(cb.columns)
    first = cb[(cb.bn == "hidden") & (cb.step == 1)].iloc[0]
    assert math.isnan(first.grad_change_max) and first.loss_max == pytest.approx(21.01)
    assert cb.attrs["runs"] == {"none": LRS, "hidden": LRS}
    assert not cb.epoch.isna().any()
    no_grad = {k: v.drop(columns="last_grad_change") for k, v in data.items()}
    cb2 = course_band(no_grad)
    assert "beta" not in cb2.columns and len(cb2) == len(loss_band(no_grad))


def test_long_table_input_and_duplicates():
    long = stack_runs(runs())
    assert {"bn", "run_lr"} <= set(long.columns) and len(long) == 8 * STEPS
    assert loss_band(long).equals(loss_band(runs()))
    with pytest.raises(ValueError, match="uniquely"):
        loss_band(pd.concat([long, long]))
    with pytest.raises(ValueError, match="lack"):
        loss_band(long.drop(columns="loss"))


def test_smooth_is_a_display_copy():
    from bnlab.figures.landscape import smooth

    band = loss_band(runs())
    before = band.copy()
    sm = smooth(band, 3)
    assert band.equals(before)
    none = sm[sm.bn == "none"]
    # linear in step: a centred mean keeps interior points, and the groups are not mixed
    assert np.allclose(none["max"].iloc[1:-1], 20 + none.step.iloc[1:-1] / 100)
    assert np.allclose(sm[sm.bn == "hidden"]["min"].iloc[1:-1], 2 + sm[sm.bn == "hidden"].step.iloc[1:-1] / 100)


def probes_table(bn, steps=(10, 20, 30), etas=(0.5, 1, 2, 4), lr=0.1):
    rows = []
    for s in steps:
        for e in etas:
            off = 0 if bn == "hidden" else 1
            rows.append({"step": s, "eta": e, "step_size": e * lr, "loss": off + s / 100 + e,
                         "grad_change": (1 + off) * e * s, "beta": (1 + off) * s / lr})
    return pd.DataFrame(rows)


def test_probe_band():
    data = {"none": probes_table("none"), "hidden": probes_table("hidden")}
    data["none"].loc[0, "loss"] = np.inf  # a non-finite probe value is ignored
    pb = probe_band(data)
    assert list(pb.bn) == ["none"] * 3 + ["hidden"] * 3
    h = pb[pb.bn == "hidden"]
    assert np.allclose(h.loss_min, h.step / 100 + 0.5) and np.allclose(h.loss_max, h.step / 100 + 4)
    assert np.allclose(h.grad_change_max, 4 * h.step) and np.allclose(h.beta_max, h.step / 0.1)
    assert (pb.n_etas == 4).all() and (pb.eta_min == 0.5).all() and (pb.eta_max == 4).all()
    n10 = pb[(pb.bn == "none") & (pb.step == 10)].iloc[0]
    assert n10.loss_min == pytest.approx(1 + 0.1 + 1)  # eta 0.5 row was inf
    # the same numbers summarise_probe gives for one step's rows
    rows = data["hidden"][data["hidden"].step == 20].to_dict("records")
    assert summarise_probe(rows) == pytest.approx(
        pb[(pb.bn == "hidden") & (pb.step == 20)][list(summarise_probe(rows))].iloc[0].to_dict())


def test_figures_render(tmp_path):
    from PIL import Image

    from bnlab.figures.style import DPI, FULL_WIDTH_IN
    from bnlab.figures.landscape import plot_course_band, plot_probe_bands, probe_every

    course = tmp_path / "course.png"
    plot_course_band(course_band(runs(diverge=6)), course, title="VGG-A", dataset_note="synthetic", lrs=LRS,
                     smooth_window=3)
    no_grad = {k: v.drop(columns="last_grad_change") for k, v in runs().items()}
    plot_course_band(course_band(no_grad), tmp_path / "loss_only.png", title="VGG-A", dataset_note="synthetic",
                     lrs=LRS)
    pb = probe_band({"none": probes_table("none"), "hidden": probes_table("hidden")})
    assert probe_every(pb) == 10
    probes = tmp_path / "probes.png"
    plot_probe_bands(pb, probes, title="VGG-A", dataset_note="synthetic")
    for path in (course, tmp_path / "loss_only.png", probes):
        with Image.open(path) as im:
            width_in = im.size[0] / DPI
        assert width_in <= FULL_WIDTH_IN * 1.05, (path, width_in)  # readable at A4 text width
