"""Where a run parameter applies is declared once, in its schema declaration's x-applies; these tests tie
each declaration to the code that reads the parameter, so the two cannot drift apart: the model registry
(widths), the initialisers (init_scale), the optimizers (momentum), the lr policy (lr_min, lr_period,
lr_gamma) and the instrument registry (an instrument's settings)."""

from dataclasses import replace

import pytest
import torch

from bnlab.config import ConfigError, resolve_run
from bnlab.instruments import instruments
from bnlab.models import DEFAULT_SCALES, accepts_widths, list_models
from bnlab.params import APPLIES, NOT_APPLICABLE, RUN_PARAMETERS, Applies
from bnlab.train.lr_policy import lr_function
from bnlab.train.optimizers import make_optimizer


def run_with(**params):
    defaults = {name: spec["default"] for name, spec in RUN_PARAMETERS.items()}
    return resolve_run({**defaults, **params})


def test_widths_apply_to_the_models_whose_builders_take_them():
    assert set(RUN_PARAMETERS["model"]["enum"]) == set(list_models())
    assert set(APPLIES["widths"].values) == {m for m in list_models() if accepts_widths(m)}


def test_init_scale_applies_to_the_schemes_with_a_scale_and_defaults_to_theirs():
    assert APPLIES["init_scale"].defaults == DEFAULT_SCALES
    assert run_with(init="uniform").init_scale == "0.5" and run_with(init="xavier").init_scale == NOT_APPLICABLE


@pytest.mark.parametrize("optimizer", RUN_PARAMETERS["optimizer"]["enum"])
def test_momentum_applies_to_the_optimizers_that_use_it(optimizer):
    spec = run_with(optimizer=optimizer, momentum=0.8)
    group = make_optimizer(spec, [torch.nn.Parameter(torch.zeros(2))]).param_groups[0]
    if optimizer in APPLIES["momentum"].values:
        assert spec.momentum == "0.8" and group["momentum"] == 0.8
    else:
        assert spec.momentum == NOT_APPLICABLE and "momentum" not in group


def _rates(spec, steps=40):
    rate = lr_function(spec, steps_per_epoch=10, total_steps=steps)
    return [spec.lr if rate is None else rate(i) for i in range(steps)]


@pytest.mark.parametrize("schedule", RUN_PARAMETERS["lr_schedule"]["enum"])
@pytest.mark.parametrize("setting,other", [("lr_min", "0.002"), ("lr_period", "2"), ("lr_gamma", "0.7")])
def test_a_schedule_setting_applies_where_the_lr_policy_reads_it(schedule, setting, other):
    """Where declared to apply, changing it changes the rates; elsewhere it is "na", which the policy
    never parses (float("na") would raise)."""
    spec = run_with(lr_schedule=schedule, lr=0.1, lr_min=0.001, lr_period=1, lr_gamma=0.5)
    if schedule in APPLIES[setting].values:
        assert _rates(replace(spec, **{setting: other})) != _rates(spec)
    else:
        assert getattr(spec, setting) == NOT_APPLICABLE
        _rates(spec)


def test_an_instruments_settings_apply_where_it_is_switched_on():
    switches = {inst.switch for inst in instruments() if inst.switch}
    for inst in instruments():
        for setting in set(inst.params) - {inst.switch}:
            applies = APPLIES[setting]
            assert (applies.param, applies.values) == (inst.switch, None), setting
    # and every parameter that depends on a switch is one of that instrument's settings
    for name, applies in APPLIES.items():
        if applies.param in switches and applies.param != name:
            owner = next(i for i in instruments() if i.switch == applies.param)
            assert name in owner.params, f"{name} depends on {applies.param} but {owner.name} does not read it"


def test_growth_settings_are_na_without_growth_and_kept_with_it():
    fixed = run_with(batch_growth_every=0, batch_growth_max=512, batch_growth_via="lr")
    assert (fixed.batch_growth_max, fixed.batch_growth_via) == (NOT_APPLICABLE, NOT_APPLICABLE)
    growing = run_with(batch_growth_every=5, batch_growth_max=512, batch_growth_via="lr")
    assert (growing.batch_growth_max, growing.batch_growth_via) == ("512", "lr")
    assert run_with(batch_mem_mb=0).batch_mem_mb == NOT_APPLICABLE and run_with(batch_mem_mb=64).batch_mem_mb == "64"


def test_a_setting_that_does_not_apply_is_one_run_or_refused_as_declared():
    assert run_with(optimizer="adam", momentum=0.5) == run_with(optimizer="adam", momentum=0.9)
    with pytest.raises(ConfigError, match=r"run\.widths': model 'lenet5' takes no widths; widths applies where "
                                          "model is mlp, cnn, cnn2 or resnet"):
        run_with(model="lenet5", widths=[8])
    with pytest.raises(ConfigError, match="lr_schedule 'exp_range' needs lr_min"):
        run_with(lr_schedule="exp_range")


@pytest.mark.parametrize("declared", [
    {"param": "model"},  # neither in nor nonzero
    {"param": "model", "in": ["mlp"], "nonzero": True},  # both
    {"param": "model", "in": ["mlp"], "elsewhere": "ignore"},
    {"param": "model", "in": ["mlp"], "when": "always"},
])
def test_a_malformed_declaration_is_refused_with_its_parameter(declared):
    with pytest.raises(ValueError, match="run parameter widths: x-applies needs"):
        Applies.from_declaration("widths", declared)
