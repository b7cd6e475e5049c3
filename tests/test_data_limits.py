"""Config values only the data can refuse (bnlab.data.limits): refused before any job, field named."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from bnlab.config import ConfigError, build_plan, load_config
from bnlab.data import DATASETS, load_prepared
from bnlab.data.catalog import DIGITS_N_TEST, TEST_IMAGES, TRAIN_IMAGES
from bnlab.data.limits import DataLimitError, check_data_limits, training_split, val_size_for

ROOT = Path(__file__).resolve().parents[1]
DIGITS_SPLIT = 1437 - 300  # digits' training images less val_size 300


def config(val_size=300, **fixed):
    study = {"title": "t", "question": "q", "fixed": {"dataset": "digits", **fixed}, "seeds": [0]}
    return {"data": {"val_size": val_size}, "defaults": {"epochs": 1}, "studies": {"s": study}}


def test_digits_sizes_are_the_files():
    from sklearn.datasets import load_digits

    n = len(load_digits().target)
    assert (TRAIN_IMAGES["digits"], TEST_IMAGES["digits"]) == (n - DIGITS_N_TEST, DIGITS_N_TEST) == (1437, 360)


def test_prepared_digits_match_the_training_split(digits_path, make_spec):
    data = load_prepared(digits_path)  # prepared with val_size 300
    assert len(data.train_x) == TRAIN_IMAGES["digits"] and len(data.test_x) == TEST_IMAGES["digits"]
    run = make_spec()
    assert training_split({"val_size": 300}, run)[0] == len(data.train_idx) == DIGITS_SPLIT
    sub = make_spec(train_subset=500)
    assert training_split({"val_size": 300}, sub)[0] == 500


def test_huge_batch_is_refused_naming_the_field_and_the_numbers():
    with pytest.raises(ConfigError) as err:
        build_plan(config(batch_size=100000))
    assert str(err.value) == ("config error at 'studies.s' (batch_size: 100000): larger than the 1137 training "
                              "images of scikit-learn digits (8x8) (1437 minus val_size 300)")


def test_a_model_too_big_for_the_images_is_refused_before_any_job():
    with pytest.raises(ConfigError) as err:
        build_plan(config(model="lenet5"))
    assert str(err.value) == (
        "config error at 'studies.s' (model: lenet5, dataset: digits): lenet5 needs images of at least 12x12 "
        "pixels and scikit-learn digits (8x8) has 8x8; use a dataset with larger images (fashion_mnist, mnist, "
        "cifar10) or a model that takes 8x8 (cnn, cnn2, minigooglenet, mlp, resnet, vgg_a)")
    assert build_plan(config(model="cnn")).studies["s"].runs[0].model == "cnn"  # three 2x2 pools fit 8x8


def test_batch_of_the_whole_training_split_is_accepted():
    run = build_plan(config(batch_size=DIGITS_SPLIT)).studies["s"].runs[0]
    assert run.batch_size == DIGITS_SPLIT
    with pytest.raises(ConfigError, match=r"\(batch_size: 1138\): larger than the 1137"):
        build_plan(config(batch_size=DIGITS_SPLIT + 1))


def test_train_subset_bounds_the_batch_and_the_split():
    build_plan(config(train_subset=500, batch_size=500))
    with pytest.raises(ConfigError, match=r"'studies.s' \(batch_size: 501\): larger than the 500 training images "
                                          r"of scikit-learn digits \(8x8\) \(train_subset 500 of 1137"):
        build_plan(config(train_subset=500, batch_size=501))
    build_plan(config(train_subset=DIGITS_SPLIT, batch_size=64))
    with pytest.raises(ConfigError, match=r"\(train_subset: 1138\): larger than the 1137 training images"):
        build_plan(config(train_subset=DIGITS_SPLIT + 1, batch_size=64))


def test_batch_growth_max_is_bounded_when_the_batch_grows():
    grow = {"batch_size": 16, "batch_growth_every": 4}
    build_plan(config(**grow, batch_growth_max=DIGITS_SPLIT))
    for via in ("batch", "lr"):
        with pytest.raises(ConfigError, match=r"\(batch_growth_max: 2048\): larger than the 1137 training"):
            build_plan(config(**grow, batch_growth_max=2048, batch_growth_via=via))
    build_plan(config(batch_size=16, batch_growth_max=2048))  # no growth: the setting is "na"


def test_val_size_must_leave_training_images():
    with pytest.raises(ConfigError, match=r"'data.val_size' \(val_size: 5000\): not smaller than the 1437 "
                                          r"training images of scikit-learn digits \(8x8\) \(used by studies.s\)"):
        build_plan(config(val_size=5000, batch_size=2))
    with pytest.raises(ConfigError, match=r"'data.val_size' \(val_size: 1437\)"):
        build_plan(config(val_size=1437, batch_size=2))
    # below the file's size but above what digits' preparation holds out: refused, not changed silently
    with pytest.raises(ConfigError, match=r"'data.val_size' \(val_size: 301\): scikit-learn digits \(8x8\) holds out "
                                          r"at most 300"):
        build_plan(config(val_size=301, batch_size=2))
    build_plan(config(val_size=300, batch_size=2))


def test_val_size_per_dataset():
    data = {"val_size": {"digits": 300, "default": 5000}}
    assert val_size_for(data, "digits") == 300 and val_size_for(data, "fashion_mnist") == 5000
    assert val_size_for({"val_size": 5000}, "digits") == 5000
    with pytest.raises(DataLimitError, match="no entry for dataset 'mnist' and no 'default'"):
        val_size_for({"val_size": {"digits": 300}}, "mnist")

    cfg = config(val_size={"digits": 300, "default": 5000}, batch_size=DIGITS_SPLIT)
    cfg["studies"]["f"] = {"title": "t", "question": "q", "fixed": {"dataset": "fashion_mnist", "batch_size": 55000}}
    plan = build_plan(cfg)
    assert {r.dataset for r in plan.runs} == {"digits", "fashion_mnist"}
    cfg["studies"]["f"]["fixed"]["batch_size"] = 55001
    with pytest.raises(ConfigError, match=r"'studies.f' \(batch_size: 55001\): larger than the 55000 training "
                                          r"images of Fashion-MNIST \(60000 minus val_size 5000\)"):
        build_plan(cfg)
    # the entry that applies is named; an explicit entry is checked even if no study uses that dataset
    with pytest.raises(ConfigError, match=r"'data.val_size.default' \(val_size: 5000\)"):
        build_plan(config(val_size={"mnist": 100, "default": 5000}))
    with pytest.raises(ConfigError, match=r"'data.val_size.cifar10' \(val_size: 50000\)"):
        build_plan(config(val_size={"cifar10": 50000, "default": 300}))
    with pytest.raises(ConfigError, match="'data.val_size': no entry for dataset 'digits' and no 'default'"):
        build_plan(config(val_size={"mnist": 100}))


def test_val_size_forms_the_schema_refuses():
    for bad in ({"digit": 300}, {"digits": 0}, {}, 0, "300"):
        with pytest.raises(ConfigError, match="config error at 'data.val_size"):
            build_plan(config(val_size=bad))


def test_check_takes_any_study_with_runs(make_spec):
    run = make_spec(batch_size=100000)
    with pytest.raises(DataLimitError, match=r"'studies.x' \(batch_size: 100000\)"):
        check_data_limits({"data": {"val_size": 300}}, {"x": SimpleNamespace(runs=[run]),
                                                         "arch": SimpleNamespace(runs=[])})


def test_shipped_configs_pass_and_keep_their_prepare_data_values():
    """The rule's val_size stays what it was for the shipped configs (a changed param re-runs prepare_data)."""
    for name, dataset, val in (("config.yaml", "fashion_mnist", 5000), ("config/full.yaml", "cifar10", 5000),
                               ("config/smoke.yaml", "digits", 300)):
        raw = load_config(ROOT / name)
        plan = build_plan(raw)
        assert dataset in plan.datasets
        assert raw["data"]["val_size"] == val
        resolved = val_size_for(plan.config["data"], dataset)
        assert resolved == val and type(resolved) is int
    rule = (ROOT / "rules" / "data.smk").read_text()
    assert 'val_size_for(PLAN.config["data"], wildcards.dataset)' in rule
    # The prepare script (left unchanged: a newer script re-prepares the data and retrains every run) holds
    # out at most 300 digits images; the config check refuses anything it would change.
    from bnlab.data.limits import MAX_VAL_SIZE

    assert "min(params.val_size, 300) if name == \"digits\"" in (ROOT / "scripts" / "prepare_data.py").read_text()
    assert MAX_VAL_SIZE["digits"] == 300


def test_schema_describes_both_forms():
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    entry = schema["properties"]["data"]["properties"]["val_size"]
    assert entry["default"] == 5000 and len(entry["oneOf"]) == 2 and "default" in entry["description"]
    assert set(entry["oneOf"][1]["properties"]) == set(DATASETS) | {"default"}
