"""Learned BN gamma/beta tables, findings and violin figure (seed 003 p1)."""

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from bnlab.analyses.bn_params import (
    bn_findings,
    display_layer,
    final_bn_params,
    labels_without_bn,
    layer_order,
    per_layer_summary,
)
from bnlab.figures.violins import plot_bn_violins
from bnlab.runfolder import BN_PARAMS, write_parquet
from bnlab.train import execute_run

COLUMNS = ["step", "epoch", "layer", "layer_index", "kind", "channel", "gamma", "beta"]
# LeNet-5 on a grey image: (name, kind, channels)
LENET = [("stem.bn", "input", 1), ("features.conv1.bn", "hidden", 6), ("features.conv2.bn", "hidden", 16),
         ("head.fc1.bn", "hidden", 12), ("head.fc2.bn", "hidden", 8)]


def fake_table(layers, steps=(0, 10, 20), seed=0) -> pd.DataFrame:
    """A bn_params table as the trainer writes it; values drift from init with the step."""
    rng = np.random.default_rng(seed)
    rows = []
    for step in steps:
        for index, (name, kind, channels) in enumerate(layers):
            for ch in range(channels):
                rows.append((step, step / 10, name, index, kind, ch,
                             1 + step * rng.normal(0.01 * index, 0.005), step * rng.normal(-0.003, 0.002)))
    return pd.DataFrame(rows, columns=COLUMNS)


def write_run(folder: Path, table: pd.DataFrame) -> Path:
    write_parquet(folder / BN_PARAMS, table)
    return folder


@pytest.fixture
def runs(tmp_path):
    """Two labels x seeds in the lenet study's shape, plus a no-BN (dropout) run."""
    return [
        ("bn hidden", 0, write_run(tmp_path / "h0", fake_table(LENET[1:], seed=1))),
        ("bn hidden", 1, write_run(tmp_path / "h1", fake_table(LENET[1:], steps=(0, 10, 20, 30), seed=2))),
        ("bn input", 0, write_run(tmp_path / "i0", fake_table(LENET, seed=3))),
        ("dropout", 0, write_run(tmp_path / "d0", pd.DataFrame(columns=COLUMNS))),
    ]


def test_display_layer():
    assert display_layer("stem.bn", "input") == "input"
    assert display_layer("features.conv2.bn", "hidden") == "conv2"
    assert display_layer("head.fc1.bn", "hidden") == "fc1"
    assert display_layer("layer1.0.bn1", "hidden") == "bn1"
    assert display_layer("bn", "hidden") == "bn"


def test_final_bn_params_keeps_last_step_in_forward_order(runs):
    params = final_bn_params(runs)
    assert list(params.columns[:9]) == ["label", "seed", "layer", "layer_display", "layer_index", "kind",
                                        "channel", "gamma", "beta"]
    # only the max step of each run (the h1 run has one step more than the others)
    assert params.groupby(["label", "seed"])["step"].unique().map(list).to_dict() == {
        ("bn hidden", 0): [20], ("bn hidden", 1): [30], ("bn input", 0): [20]}
    n_hidden = sum(c for _, _, c in LENET[1:])
    assert len(params) == 2 * n_hidden + (n_hidden + 1)
    assert "dropout" not in set(params.label)
    assert labels_without_bn(runs, params) == ["dropout"]
    for _, run in params.groupby(["label", "seed"]):
        assert run.layer_index.is_monotonic_increasing
    seq = params[params.label == "bn input"].drop_duplicates("layer").layer_display.tolist()
    assert seq == ["input", "conv1", "conv2", "fc1", "fc2"]
    assert set(params.loc[params.layer_display == "input", "kind"]) == {"input"}
    # the values are those of the file's last step, untouched
    src = pd.read_parquet(runs[2][2] / BN_PARAMS)
    src = src[src.step == 20].reset_index(drop=True)
    np.testing.assert_array_equal(params[params.label == "bn input"].gamma.to_numpy(), src.gamma.to_numpy())


def test_final_bn_params_without_any_bn(tmp_path):
    params = final_bn_params([("dropout", 0, write_run(tmp_path / "d", pd.DataFrame(columns=COLUMNS)))])
    assert params.empty and "layer_display" in params.columns
    assert per_layer_summary(params).empty
    assert bn_findings(per_layer_summary(params)) == ["No run of this study has batch norm."]


def test_clashing_short_names_stay_apart(tmp_path):
    layers = [("a.conv1.bn", "hidden", 2), ("b.conv1.bn", "hidden", 3)]
    params = final_bn_params([("x", 0, write_run(tmp_path / "r", fake_table(layers)))])
    assert layer_order(params) == ["a.conv1", "b.conv1"]


def test_layer_order_puts_input_first_across_variants(runs):
    # the hidden-only run comes first, and its conv1 has layer_index 0 like the other's input
    assert layer_order(final_bn_params(runs)) == ["input", "conv1", "conv2", "fc1", "fc2"]


def test_per_layer_summary_matches_numpy(runs):
    params = final_bn_params(runs)
    summary = per_layer_summary(params)
    assert summary[["label", "layer"]].values.tolist() == [
        ["bn hidden", "conv1"], ["bn hidden", "conv2"], ["bn hidden", "fc1"], ["bn hidden", "fc2"],
        ["bn input", "input"], ["bn input", "conv1"], ["bn input", "conv2"], ["bn input", "fc1"],
        ["bn input", "fc2"]]
    row = summary[(summary.label == "bn hidden") & (summary.layer == "conv2")].iloc[0]
    sel = params[(params.label == "bn hidden") & (params.layer_display == "conv2")]
    g, b = sel.gamma.to_numpy(), sel.beta.to_numpy()
    assert (row.channels, row.seeds, row.n) == (16, 2, 32)
    for name, values in (("gamma", g), ("beta", b)):
        assert row[f"{name}_mean"] == pytest.approx(np.mean(values))
        assert row[f"{name}_sd"] == pytest.approx(np.std(values, ddof=1))
        assert row[f"{name}_min"] == pytest.approx(np.min(values))
        assert row[f"{name}_median"] == pytest.approx(np.median(values))
        assert row[f"{name}_max"] == pytest.approx(np.max(values))
    assert row.gamma_dev_mean == pytest.approx(np.mean(np.abs(g - 1)))
    assert row.beta_abs_mean == pytest.approx(np.mean(np.abs(b)))
    one = summary[summary.layer == "input"].iloc[0]
    assert one.channels == 1 and one.n == 1 and np.isnan(one.gamma_sd)  # one value: no sd


def test_bn_findings_name_layers_and_input(runs):
    params = final_bn_params(runs)
    summary = per_layer_summary(params)
    sentences = bn_findings(summary, labels_without_bn(runs, params))
    text = "\n".join(sentences)
    # gamma drifts with layer_index in fake_table, so the last layer moved most
    assert "bn hidden: gamma is furthest from its init 1 in fc2" in text
    assert "closest in conv1" in text
    assert any(s.startswith("bn input: the input BN (1 channel) moved away") for s in sentences)
    assert "beta has the largest mean |beta| in" in text
    assert sentences[-1] == "No BN layer (so no gamma/beta) in: dropout."
    assert all(layer in text for layer in ("input", "conv1", "fc2"))


def test_bn_findings_input_at_init(tmp_path):
    table = fake_table(LENET[:2], steps=(0,))  # step 0: gamma 1, beta 0 exactly
    summary = per_layer_summary(final_bn_params([("init", 0, write_run(tmp_path / "r", table))]))
    assert any("input BN (1 channel) stayed within" in s for s in bn_findings(summary))


def assert_png(path: Path) -> None:
    assert path.exists() and path.stat().st_size > 0
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[1] > 1000  # 7 in at the style's 200 dpi, give or take bbox


def test_violins_normal_single_label_one_channel_and_empty(runs, tmp_path):
    params = final_bn_params(runs)
    plot_bn_violins(params, tmp_path / "all.png", title="lenet", no_bn_labels=labels_without_bn(runs, params))
    plot_bn_violins(params[params.label == "bn hidden"], tmp_path / "single.png")
    # only the 1-channel input BN of one seed: a single value per panel
    plot_bn_violins(params[params.layer_display == "input"], tmp_path / "one_channel.png")
    plot_bn_violins(params.iloc[:0], tmp_path / "empty.png", no_bn_labels=["dropout"])
    for name in ("all", "single", "one_channel", "empty"):
        assert_png(tmp_path / f"{name}.png")


def test_violins_survive_a_diverged_run(runs, tmp_path):
    params = final_bn_params(runs)
    params.loc[params.label == "bn input", ["gamma", "beta"]] = np.nan
    plot_bn_violins(params, tmp_path / "nan.png")
    assert_png(tmp_path / "nan.png")


def test_real_run_has_input_and_hidden_layers(tmp_path, digits_path, make_spec):
    spec = make_spec(model="mlp", widths=[16, 16], bn="input+hidden", epochs=1)
    execute_run(spec, digits_path, tmp_path / "run", log=lambda _: None)
    params = final_bn_params([("mlp bn", 0, tmp_path / "run")])
    assert layer_order(params) == ["input", "fc1", "fc2"]
    assert params.groupby("layer_display").channel.nunique().to_dict() == {"input": 64, "fc1": 16, "fc2": 16}
    assert params.step.nunique() == 1 and params.step.iloc[0] > 0  # trained, not the init snapshot
    hidden = params[params.kind == "hidden"]
    assert not np.allclose(hidden.gamma, 1.0)  # one epoch of Adam moves gamma off its init
    summary = per_layer_summary(params)
    assert any("input BN (64 channels)" in s for s in bn_findings(summary))
    plot_bn_violins(params, tmp_path / "real.png", title="digits mlp")
    assert_png(tmp_path / "real.png")
