"""Config validation and study expansion (bnlab.config)."""

import copy
from pathlib import Path

import pytest
import yaml

from bnlab.config import ConfigError, build_plan, load_config, load_schema, resolve_run, validate_config
from bnlab.data import DATASETS
from bnlab.models import ACTIVATIONS, BN_PLACEMENTS, INIT_SCHEMES, list_models
from bnlab.params import DIRECTORY_PARAMS, PARAM_NAMES, RunSpec, run_paramspaces

ROOT = Path(__file__).resolve().parents[1]


def small_config(**study_overrides):
    study = {"title": "t", "question": "q", "grid": {"bn": ["none", "hidden"]}, "seeds": [0, 1]}
    study.update(study_overrides)
    # digits has 1437 training images: the schema's default val_size of 5000 does not fit
    return {"data": {"val_size": 300}, "defaults": {"dataset": "digits", "epochs": 1}, "studies": {"s": study}}


def test_grid_times_seeds_and_defaults_filled():
    plan = build_plan(small_config())
    study = plan.studies["s"]
    assert len(study.runs) == 4
    assert study.axes == ["bn"]
    assert {r.seed for r in study.runs} == {0, 1}
    assert plan.config["data"]["val_size"] == 300 and plan.config["data"]["split_seed"] == 0  # schema default
    unset = {k: v for k, v in small_config().items() if k != "data"}
    assert validate_config(unset)["data"]["val_size"] == 5000  # schema default
    assert study.runs[0].batch_size == 128 and study.runs[0].optimizer == "adam"


def test_lr_spellings_are_one_run_and_studies_share_cells():
    cfg = small_config(grid={"lr": ["1e-3", 0.001, 1.0e-3]}, seeds=[0])
    cfg["studies"]["other"] = {"title": "t2", "question": "q2", "fixed": {"lr": "0.001"}}
    plan = build_plan(cfg)
    assert len(plan.studies["s"].runs) == 1
    assert plan.studies["s"].runs[0].relative_dir() == plan.studies["other"].runs[0].relative_dir()
    assert len(plan.runs) == 1


def test_list_of_grids_is_a_union_and_exclusions_apply():
    grid = [{"model": ["mlp"], "lr": [0.01, 0.1]}, {"model": ["cnn2"], "lr": [0.05]}]
    plan = build_plan(small_config(grid=grid, seeds=[0], exclude=[{"model": "mlp", "lr": "1e-2"}]))
    got = {(r.model, r.lr) for r in plan.studies["s"].runs}
    assert got == {("mlp", 0.1), ("cnn2", 0.05)}
    assert plan.studies["s"].axes == ["model", "lr"]


def test_irrelevant_parameters_are_canonicalised():
    adam = resolve_run({**_full(), "optimizer": "adam", "momentum": 0.5})
    assert adam.momentum == "na"  # adam has no momentum: same run whatever was written
    sgd = resolve_run({**_full(), "optimizer": "sgd", "momentum": 0.5})
    assert sgd.momentum_value == 0.5
    normal = resolve_run({**_full(), "init": "normal"})
    assert normal.init_scale_value == 1.0
    lenet = resolve_run({**_full(), "model": "lenet5"})
    assert lenet.widths == "na"


def _full():
    schema = load_schema()["$defs"]["run"]["properties"]
    return {k: v["default"] for k, v in schema.items()}


@pytest.mark.parametrize(
    "fixed, field, hint",
    [
        ({"lrr": 0.1}, "fixed.lrr", "unknown run parameter"),
        ({"lr": 0}, "fixed.lr", "less than or equal to the minimum of 0"),
        ({"lr": "fast"}, "fixed.lr", "not of type 'number'"),
        ({"dropout_hidden": 1.0}, "fixed.dropout_hidden", "maximum of 1"),
        ({"dropout_in": -0.1}, "fixed.dropout_in", "minimum of 0"),
        ({"epochs": 0}, "fixed.epochs", "minimum of 1"),
        ({"model": "resnet50"}, "fixed.model", "allowed: mlp"),
        ({"dataset": "imagenet"}, "fixed.dataset", "allowed: fashion_mnist"),
        ({"init": "orthogonal"}, "fixed.init", "allowed: default"),
        ({"activation": "gelu"}, "fixed.activation", "allowed: relu"),
        ({"optimizer": "rmsprop"}, "fixed.optimizer", "allowed: adam"),
        ({"batch_size": 1}, "fixed.batch_size", "minimum of 2"),
        ({"seed": 3}, "fixed.seed", "seeds"),
    ],
)
def test_bad_values_name_the_field(fixed, field, hint):
    with pytest.raises(ConfigError) as err:
        build_plan(small_config(fixed=fixed))
    assert f"studies.s.{field}" in str(err.value)
    assert hint in str(err.value)


def test_bad_grid_value_and_cross_field_errors():
    with pytest.raises(ConfigError, match=r"studies\.s\.grid\.lr\[1\]"):
        build_plan(small_config(grid={"lr": [0.1, -1]}))
    with pytest.raises(ConfigError, match="init 'xavier' takes no init_scale; init_scale applies where init is normal or uniform"):
        build_plan(small_config(fixed={"init": "xavier", "init_scale": 0.1}))
    with pytest.raises(ConfigError, match="model 'lenet5' takes no widths; widths applies where model is mlp, cnn, cnn2 or resnet"):
        build_plan(small_config(fixed={"model": "lenet5", "widths": [10]}))
    with pytest.raises(ConfigError, match="leave no run"):
        build_plan(small_config(exclude=[{"dataset": "digits"}]))


def test_unknown_top_level_and_study_keys():
    cfg = small_config()
    cfg["reslts"] = "x"
    with pytest.raises(ConfigError, match="'reslts' was unexpected"):
        build_plan(cfg)
    cfg = small_config()
    cfg["studies"]["s"]["grids"] = {}
    with pytest.raises(ConfigError, match="studies.s"):
        build_plan(cfg)


def test_schema_enums_match_the_registries():
    props = load_schema()["$defs"]["run"]["properties"]
    assert sorted(props["model"]["enum"]) == sorted(list_models())
    assert tuple(props["dataset"]["enum"]) == DATASETS
    assert tuple(props["activation"]["enum"]) == ACTIVATIONS
    assert tuple(props["bn"]["enum"]) == BN_PLACEMENTS
    assert tuple(props["init"]["enum"]) == INIT_SCHEMES
    assert list(props) == [p for p in PARAM_NAMES]


def test_run_folder_matches_paramspace_and_round_trips():
    plan = build_plan(load_config(ROOT / "config.yaml"))
    runs = plan.runs
    spaces = run_paramspaces(runs)
    got = ["/".join(parts) for parts in zip(*(space.instance_patterns for space in spaces))]
    assert got == [r.relative_dir() for r in runs]
    for run in runs:
        assert all(len(part) < 200 for part in run.relative_dir().split("/"))
    for run in runs:
        assert RunSpec.from_strings(run.as_strings()) == run
        # values never hold the separators of the folder name
        assert all("/" not in v and "~" not in v for v in run.as_strings().values())


@pytest.mark.parametrize("name", ["config.yaml", "config/smoke.yaml", "config/full.yaml", "config/reproduce.yaml"])
def test_shipped_configs_are_valid(name):
    path = ROOT / name
    if not path.exists():
        pytest.skip(f"{name} not present")
    plan = build_plan(load_config(path))
    assert plan.runs


def test_config_is_not_modified():
    cfg = small_config()
    before = copy.deepcopy(cfg)
    build_plan(cfg)
    assert cfg == before
    assert yaml.safe_dump(cfg)  # still plain data


def test_studies_that_train_nothing():
    cfg = small_config()
    cfg["studies"]["arch"] = {"kind": "arch", "title": "a", "question": "q"}
    plan = build_plan(cfg)
    assert plan.studies["arch"].runs == [] and plan.studies["arch"].analyses == ["arch"]
    assert plan.train_studies == ["s"]
    cfg["studies"]["arch"]["grid"] = {"lr": [0.1]}
    with pytest.raises(ConfigError, match="studies.arch.grid.*trains nothing"):
        build_plan(cfg)


def test_defaults_fill_list_items():
    ref = {"what": "LeNet-5", "published": "99%", "source": "paper"}
    plan = build_plan(small_config(references=[ref]))
    assert plan.studies["s"].references[0]["metric"] == "final_test_acc"
    assert plan.studies["s"].references[0]["match"] == {}


def test_schedule_parameters_are_required_or_canonicalised():
    with pytest.raises(ConfigError, match="lr_schedule 'triangular' needs lr_min"):
        build_plan(small_config(fixed={"lr_schedule": "triangular"}))
    with pytest.raises(ConfigError, match="must be below lr"):
        build_plan(small_config(fixed={"lr_schedule": "range_test", "lr_min": 1.0, "lr": 0.1}))
    run = build_plan(small_config(fixed={"lr_schedule": "exp_range", "lr_min": 1e-5})).runs[0]
    assert (run.lr_min, run.lr_period, run.lr_gamma) == ("1e-5", "2", "0.99994")
    constant = build_plan(small_config(fixed={"lr_min": 1e-5, "lr_gamma": 3})).runs[0]
    assert (constant.lr_min, constant.lr_period, constant.lr_gamma) == ("na", "na", "na")


def test_study_resources_raise_the_execution_defaults_for_its_runs():
    cfg = {"data": {"val_size": 300},
           "execution": {"mem_mb": 3000, "runtime_min": 60, "gpus_per_run": 0},
           "defaults": {"dataset": "digits", "model": "mlp", "widths": [16], "epochs": 1, "batch_size": 64},
           "studies": {
               "small": {"title": "t", "question": "q", "grid": {"bn": ["none", "hidden"]}},
               "big": {"title": "t", "question": "q", "grid": {"bn": ["hidden"], "epochs": [1, 5]},
                       "resources": {"runtime_min": 240, "gpus_per_run": 1}},
           }}
    plan = build_plan(cfg)
    shared = plan.studies["small"].select({"bn": "hidden"})[0]  # also the big study's 1-epoch cell
    alone = plan.studies["small"].select({"bn": "none"})[0]
    long = plan.studies["big"].select({"epochs": "5"})[0]
    assert plan.run_resources(alone) == {"mem_mb": 3000, "runtime_min": 60, "gpus_per_run": 0}
    assert plan.run_resources(shared) == {"mem_mb": 3000, "runtime_min": 240, "gpus_per_run": 1}
    assert plan.run_resources(long) == {"mem_mb": 3000, "runtime_min": 240, "gpus_per_run": 1}
    bad = {**cfg, "studies": {"s": {"title": "t", "question": "q", "resources": {"gpus": 1}}}}
    with pytest.raises(ConfigError, match=r"'studies.s.resources'.*allowed keys: gpus_per_run, mem_mb, runtime_min"):
        build_plan(bad)


def test_labels_name_cells_in_words_and_keep_cells_apart():
    grid = {"bn": ["none", "hidden"], "dropout_hidden": [0, 0.5], "lr": [1e-3, 1e-2]}
    labels = [{"name": "BN + dropout", "cell": {"bn": "hidden", "dropout_hidden": 0.5}},
              {"name": "plain", "cell": {"bn": "none", "dropout_hidden": 0}}]
    study = build_plan(small_config(grid=grid, labels=labels)).studies["s"]
    names = {study.label(r) for r in study.runs}
    # a named cell: its name, then what else varies; an unnamed one keeps key=value
    assert {"BN + dropout, lr=0.001", "BN + dropout, lr=0.01", "plain, lr=0.001"} <= names
    assert "bn=hidden, dropout_hidden=0, lr=0.001" in names
    assert "bn=hidden, dropout_hidden=0, lr=0.001" in {build_plan(small_config(grid=grid)).studies["s"].label(r)
                                                       for r in study.runs}
    # one name for two cells is refused, naming the field
    clash = [{"name": "BN", "cell": {"bn": "hidden", "dropout_hidden": 0}},
             {"name": "BN", "cell": {"bn": "hidden", "dropout_hidden": 0.5}}]
    with pytest.raises(ConfigError, match=r"'studies\.s\.labels'.*both called 'BN, lr=0.001'"):
        build_plan(small_config(grid=grid, labels=clash))
    with pytest.raises(ConfigError, match=r"'studies\.s\.labels\[0\]\.cell'.*matches no run"):
        build_plan(small_config(grid=grid, labels=[{"name": "x", "cell": {"bn": "input+hidden"}}]))
