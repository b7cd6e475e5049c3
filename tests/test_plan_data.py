"""A plan as plain data: what the analysis and report rules carry as params.

Snakemake re-runs a job whose params changed only where they are plain data (it skips any other object
when it compares), so a study's text or claims reach the report only if the rules carry them as data.
"""

import dataclasses

import pytest

from bnlab.config import Plan, StudyPlan, load_config
from bnlab.workflow import load_plan
from tests.test_workflow import ROOT

CONFIGS = ["config.yaml", "config/smoke.yaml", "config/reproduce.yaml", "config/full.yaml"]
PLAIN = (dict, list, str, int, float, bool, type(None))


def plain_everywhere(value, where="") -> list[str]:
    """Paths inside `value` that hold something other than dicts, lists and scalars."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in
                ([f"{where}: key {k!r}"] if not isinstance(k, str) else []) + plain_everywhere(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in plain_everywhere(v, f"{where}[{i}]")]
    return [] if isinstance(value, PLAIN) else [f"{where}: {type(value).__name__}"]


@pytest.fixture(scope="module", params=CONFIGS)
def plan(request):
    return load_plan(load_config(ROOT / request.param))


def test_a_plan_is_plain_data_and_comes_back_equal(plan):
    data = plan.to_data()
    assert plain_everywhere(data) == []
    back = Plan.from_data(data)
    assert back == plan
    for name, study in plan.studies.items():
        assert StudyPlan.from_data(study.to_data()) == study
        again = back.studies[name]
        # what the analyses use of a study behaves the same after the round trip
        assert [again.label(r) for r in again.runs] == [study.label(r) for r in study.runs]
        assert again.seed_differences() == study.seed_differences()


def test_a_changed_title_or_claim_changes_the_data(plan):
    name, study = next((n, s) for n, s in plan.studies.items() if s.runs)
    before = repr(study.to_data())
    assert repr(dataclasses.replace(study, title=study.title + " (edited)").to_data()) != before
    assert repr(dataclasses.replace(study, expect=[*study.expect, {"claim": "new"}]).to_data()) != before
    assert repr(study.to_data()) == before  # the same study gives the same text every time
