"""The study library: each study written once, its scales as overlays (bnlab/studies.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bnlab.config import ConfigError, build_plan, load_config
from bnlab.studies import SCALE_PARAMS, compose, library

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [ROOT / "config.yaml", *sorted((ROOT / "config").glob("*.yaml")), *sorted((ROOT / "config/studies").glob("*.yaml"))]
TEXT_KEYS = {"claim": "claim", "question": "question", "what": "reference"}  # texts a study writes once


def written_texts(paths) -> dict[tuple[str, str], list[str]]:
    """(kind, text) -> where each claim, question and reference text is written, over the files."""
    found: dict[tuple[str, str], list[str]] = {}

    def walk(value, where):
        if isinstance(value, dict):
            for key, sub in value.items():
                if key in TEXT_KEYS and isinstance(sub, str):
                    found.setdefault((TEXT_KEYS[key], " ".join(sub.split())), []).append(f"{where}.{key}")
                walk(sub, f"{where}.{key}")
        elif isinstance(value, list):
            for i, sub in enumerate(value):
                walk(sub, f"{where}[{i}]")

    for path in paths:
        if path.name == "schema.yaml":
            continue
        walk(yaml.safe_load(path.read_text()), path.relative_to(path.parents[1]).as_posix())
    return found


def test_no_claim_reference_or_question_is_written_twice():
    texts = written_texts(CONFIGS)
    assert len(texts) > 90  # the scan sees the library (17 studies' questions, claims and references)
    twice = {text: where for text, where in texts.items() if len(where) > 1}
    assert not twice, "written more than once:\n" + "\n".join(f"{t}: {w}" for t, w in twice.items())


def test_the_duplicate_check_finds_a_copy(tmp_path):
    (tmp_path / "a").mkdir()
    one = tmp_path / "a" / "one.yaml"
    one.write_text(yaml.safe_dump({"s": {"question": "Q?", "expect": [{"claim": "C holds"}]}}))
    two = tmp_path / "a" / "two.yaml"
    two.write_text(yaml.safe_dump({"t": {"question": "R?", "expect": [{"claim": "C  holds"}]}}))
    twice = {t: w for t, w in written_texts([one, two]).items() if len(w) > 1}
    assert twice == {("claim", "C holds"): ["a/one.yaml.s.expect[0].claim", "a/two.yaml.t.expect[0].claim"]}


def test_the_shipped_configs_are_short_selections_of_the_library():
    meta, studies = library()
    for name in ("config.yaml", "config/full.yaml", "config/reproduce.yaml"):
        raw = load_config(ROOT / name)
        assert raw["scale"] in meta["scales"] and "studies" in raw
        assert not isinstance(raw["studies"], dict)  # names, not studies written out again
        assert len((ROOT / name).read_text().splitlines()) < 60
    assert set(meta["order"]) == set(studies)


def all_available(_name):
    return True


def test_a_scale_changes_the_size_not_the_science():
    quick = compose({"scale": "quick", "studies": ["bn_cifar", "lr_bn"]}, all_available)
    seed = compose({"scale": "seed", "studies": ["bn_cifar", "lr_bn"]}, all_available)
    qp, sp = build_plan(quick), build_plan(seed)
    assert qp.studies["bn_cifar"].datasets == ["fashion_mnist"] and sp.studies["bn_cifar"].datasets == ["cifar10"]
    assert sorted({r.epochs for r in qp.studies["bn_cifar"].runs}) == [4, 8]
    assert sorted({r.epochs for r in sp.studies["bn_cifar"].runs}) == [15, 45]
    # the science is the same text at both scales
    for study in ("bn_cifar", "lr_bn"):
        q, s = qp.studies[study], sp.studies[study]
        assert (q.question, q.title, [e["claim"] for e in q.expect]) == (s.question, s.title, [e["claim"] for e in s.expect])
        assert {(r.optimizer, r.lr, r.bn) for r in q.runs} == {(r.optimizer, r.lr, r.bn) for r in s.runs}
    assert qp.studies["lr_bn"].datasets == sp.studies["lr_bn"].datasets == ["mnist"]
    assert [r.seed for r in sp.studies["lr_bn"].runs[:3]] == [0, 1, 2]


@pytest.fixture
def one_study(tmp_path, monkeypatch):
    import bnlab.studies as studies

    real = studies.library

    def make(study: dict):
        (tmp_path / "studies").mkdir(exist_ok=True)
        (tmp_path / "studies" / "s.yaml").write_text(yaml.safe_dump({"s": study}))
        (tmp_path / "library.yaml").write_text(yaml.safe_dump(
            {"order": ["s"], "scales": {"quick": {}, "seed": {}},
             "defaults": {"dataset": "digits", "model": "mlp", "widths": [8], "epochs": 1, "batch_size": 32}}))
        monkeypatch.setattr(studies, "library", lambda: real(tmp_path / "studies", tmp_path / "library.yaml"))
        def plan(scale):
            try:
                composed = compose({"scale": scale, "studies": "all", "data": {"val_size": 300}}, all_available)
            except studies.LibraryError as err:  # what bnlab.config.validate_config reports it as
                raise ConfigError(str(err)) from None
            return build_plan(composed)

        return plan
    return make


BASE = {"title": "t", "question": "q?", "grid": {"bn": ["none", "hidden"]}}


def test_an_overlay_that_changes_the_science_is_refused(one_study):
    plan = one_study({**BASE, "scales": {"quick": {"fixed": {"optimizer": "sgd"}}}})
    with pytest.raises(ConfigError, match=r"studies\.s\.scales\.quick\.fixed\.optimizer': a scale changes only"):
        plan("quick")


def test_a_var_may_stand_only_for_a_scale_parameter(one_study):
    plan = one_study({**BASE, "fixed": {"lr": "$rate"}, "scales": {"quick": {"vars": {"rate": 0.1}}}})
    with pytest.raises(ConfigError, match=r"studies\.s\.fixed\.lr': '\$rate' stands for a value of 'lr', which is the "
                                          "study's science"):
        plan("quick")
    assert "lr" not in SCALE_PARAMS and "epochs" in SCALE_PARAMS


def test_vars_fill_grids_and_selectors_and_a_missing_one_is_named(one_study):
    study = {**BASE, "grid": [{"bn": ["none", "hidden"]}, {"bn": ["none"], "epochs": ["$long"]}],
             "expect": [{"claim": "longer is better", "source": "x", "test": "higher",
                         "a": {"bn": "none", "epochs": "$long"}, "b": {"bn": "none", "epochs": 1}}],
             "scales": {"quick": {"vars": {"long": 2}}, "seed": {"vars": {"long": 3}}}}
    plan = one_study(study)
    quick, seed = plan("quick").studies["s"], plan("seed").studies["s"]
    assert sorted({r.epochs for r in quick.runs}) == [1, 2] and sorted({r.epochs for r in seed.runs}) == [1, 3]
    assert quick.expect[0]["a"]["epochs"] == "2" and seed.expect[0]["a"]["epochs"] == "3"
    study["scales"]["seed"] = {}
    with pytest.raises(ConfigError, match=r"studies\.s\.grid\[1\]\.epochs\[0\]': scale 'seed' gives no value for "
                                          r"'\$long'"):
        one_study(study)("seed")


def test_a_missing_dataset_falls_back_where_the_scale_allows_and_says_so():
    config = {"scale": "quick", "studies": ["lr_bn", "gradcheck"]}
    here = build_plan(compose(config, all_available))
    assert here.studies["lr_bn"].datasets == ["mnist"] and not here.studies["lr_bn"].setting_note
    missing = build_plan(compose(config, lambda name: name != "mnist"))
    lr_bn = missing.studies["lr_bn"]
    assert lr_bn.datasets == ["fashion_mnist"]
    assert lr_bn.setting_note == ("MNIST was not found on this machine, so this study uses Fashion-MNIST "
                                  "instead; its verdicts are about Fashion-MNIST (./setup.sh fetches it where "
                                  "npm is available: README, Data).")
    assert missing.studies["gradcheck"].options["dataset"] == "fashion_mnist"


def test_reproduce_leaves_out_what_is_not_here_and_says_why():
    raw = load_config(ROOT / "config/reproduce.yaml")
    with_mnist = compose(raw, lambda name: name in ("fashion_mnist", "mnist", "digits"))
    assert list(with_mnist["studies"]) == ["init", "lr_bn", "lenet", "gradcheck", "arch"]
    left = with_mnist["report"]["left_out"]
    assert left["bn_cifar"] == "CIFAR-10 not on this machine"
    assert left["lr_range"].startswith("MiniGoogLeNet")
    without = compose(raw, lambda name: name in ("fashion_mnist", "digits"))
    assert list(without["studies"]) == ["init", "gradcheck", "arch"]
    assert without["report"]["left_out"]["lr_bn"] == "MNIST not on this machine"
    # the gradient check takes the first of its fallbacks that is here
    assert with_mnist["studies"]["gradcheck"]["options"]["dataset"] == "mnist"
    assert without["studies"]["gradcheck"]["options"]["dataset"] == "fashion_mnist"


def test_one_study_at_one_scale_from_the_command_line():
    # snakemake --config studies=lr_bn,lenet scale=seed: the values arrive as text
    config = {**load_config(ROOT / "config.yaml"), "studies": "lr_bn,lenet", "scale": "seed"}
    plan = build_plan(compose(config, all_available))
    assert list(plan.studies) == ["lr_bn", "lenet"]
    assert {r.epochs for r in plan.studies["lenet"].runs} == {20}
    with pytest.raises(ConfigError, match="config error at 'studies': no study 'lr_nb' in the library"):
        build_plan({**config, "studies": "lr_nb"})
    with pytest.raises(ConfigError, match="no scale 'slow'"):
        build_plan({**config, "scale": "slow"})
    with pytest.raises(ConfigError, match="a list of study names needs a scale"):
        build_plan({"studies": ["lr_bn"]})


def test_each_study_says_how_its_scale_differs_from_its_seed():
    quick = build_plan(compose({"scale": "quick", "studies": ["lr_bn", "depth_bn"]}, all_available))
    assert quick.studies["lr_bn"].seed_differences() == [
        "3 epochs (seed: 5 epochs)", "20,000 training images (seed: every training image)"]
    assert quick.studies["depth_bn"].seed_differences()[0] == "Fashion-MNIST (seed: CIFAR-10)"
    seed = build_plan(compose({"scale": "seed", "studies": ["lr_bn"]}, all_available))
    assert seed.studies["lr_bn"].seed_differences() == []


def test_shrink_keeps_cells_apart_and_makes_every_instrument_fire():
    config = {**load_config(ROOT / "config/full.yaml"), "shrink": {"train_images": 256, "epochs": 1, "seeds": 1},
              "data": {"val_size": 100, "download": False}}
    plan = build_plan(compose(config, all_available))
    bn_cifar = plan.studies["bn_cifar"]
    assert sorted({r.epochs for r in bn_cifar.runs}) == [1, 3]  # 15 and 45: the long cells stay longer
    assert {r.seed for r in plan.runs} == {0} and {r.train_subset for r in plan.runs} == {256}
    landscape = plan.studies["landscape"].runs
    assert {r.model for r in landscape} == {"vgg_a"} and {r.probe_every for r in landscape} == {2}
    growth = [r for r in plan.studies["batch_growth"].runs if r.batch_growth_every]
    assert {(r.batch_growth_every, int(r.batch_growth_max)) for r in growth} == {(2, 256)}
    # the selectors follow the same scaling: the long cell's expectation names epochs 3
    longer = next(e for e in bn_cifar.expect if e["claim"].startswith("Training longer"))
    assert longer["a"]["epochs"] == "3" and longer["b"]["epochs"] == "1"
    assert plan.config["report"]["subtitle"].startswith("TOY SIZE")
    # without shrink, nothing changes
    assert sorted({r.epochs for r in build_plan(compose(load_config(ROOT / "config/full.yaml"), all_available))
                   .studies["bn_cifar"].runs}) == [15, 45]
