"""Staged searches (seed 001 section 4): best-/draw<i>-<study> references, their plan checks, resolution
in training, the search analysis's verdicts, and the hand-off through the workflow."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from bnlab.analyses.search import findings, measures, stage_summaries
from bnlab.config import ConfigError, build_plan
from bnlab.params import RunSpec, search_ref
from bnlab.search import SEARCH_TABLE, best, draw, earlier_stages, resolve, scores
from bnlab.train.run import resolve_picks

ROOT = Path(__file__).resolve().parents[1]


def stage_config(**studies) -> dict:
    base = {"results": "res", "data": {"val_size": 300}, "defaults": {"dataset": "digits", "model": "mlp", "widths": [16], "epochs": 1},
            "studies": {}}
    for name, body in studies.items():
        base["studies"][name] = {"title": name, "question": "q", **body}
    return base


def three_stages() -> dict:
    return stage_config(
        coarse={"grid": {"l2": {"linspace": ["1e-5", "1e-1", 5]}}},
        fine={"grid": {"l2": {"draws": 3, "near": "coarse"}}},
        final={"fixed": {"l2": "best-fine", "epochs": 2}, "analyses": ["search"]},
    )


# ------------------------------------------------------------------ references and config
def test_references_parse_and_keep_their_text_in_the_folder_name(make_spec):
    assert search_ref("best-l2_coarse") == ("best", 0, "l2_coarse")
    assert search_ref("draw12-l2_coarse") == ("draw", 12, "l2_coarse")
    assert search_ref("draw0-x") is None and search_ref("pick-x") is None and search_ref(0.5) is None
    run = make_spec(l2="draw3-coarse")
    assert run.l2 == "draw3-coarse" and run.searches == {"l2": "draw3-coarse"} and run.source_studies == {"coarse"}
    assert "l2~draw3-coarse_" in run.relative_dir()
    assert RunSpec.from_relative_dir(run.relative_dir()) == run


def test_linspace_and_draws_axes_expand_into_the_stages_runs():
    plan = build_plan(three_stages())
    coarse = sorted(r.l2 for r in plan.studies["coarse"].runs)
    assert coarse == [1e-5, 0.0250075, 0.050005, 0.0750025, 0.1]  # 6 significant digits, ends included
    assert sorted(r.l2 for r in plan.studies["fine"].runs) == ["draw1-coarse", "draw2-coarse", "draw3-coarse"]
    assert earlier_stages(plan.studies, "final") == ["coarse", "fine"]
    assert earlier_stages(plan.studies, "coarse") == []


@pytest.mark.parametrize("studies, message", [
    ({"a": {"fixed": {"l2": "best-nowhere"}}}, "no study 'nowhere'"),
    ({"a": {"grid": {"l2": [0.1, "best-a"]}}}, "cannot search from its own runs"),
    ({"one": {"fixed": {"l2": 0.1}}, "a": {"fixed": {"l2": "best-one"}}}, "tries 1 value of l2"),
    ({"a": {"grid": {"l2": [0.1, "best-b"]}}, "b": {"grid": {"l2": [0.2, "best-a"]}}}, "refer back to it"),
    ({"a": {"grid": {"l2": {"linspace": [0.1, 0.01, 3]}}}}, "needs lo < hi"),
])
def test_bad_search_stages_are_config_errors_naming_the_study(studies, message):
    with pytest.raises(ConfigError, match=message):
        build_plan(stage_config(**studies))


def test_the_schema_rejects_a_malformed_reference():
    with pytest.raises(ConfigError, match="l2"):
        build_plan(stage_config(a={"fixed": {"l2": "best_of-x"}}))


# ------------------------------------------------------------------ best value and draws
def table(rows) -> pd.DataFrame:
    return pd.DataFrame([{"run_dir": f"r{i}", "seed": s, "status": st, "final_val_acc": acc,
                          "final_test_acc": acc, "l2": v} for i, (v, s, st, acc) in enumerate(rows)])


def test_best_is_the_highest_mean_over_seeds_and_a_diverged_run_is_never_best():
    rows = table([(0.1, 0, "ok", 0.80), (0.1, 1, "ok", 0.70),     # mean 0.75
                  (0.2, 0, "ok", 0.74), (0.2, 1, "ok", 0.74),     # 0.74
                  (0.3, 0, "diverged", 0.99), (0.3, 1, "ok", 0.99),  # one diverged: -inf
                  (0.4, 0, "ok", 0.60)])
    found = best(rows, "l2")
    assert found == {"value": 0.1, "score": pytest.approx(0.75), "lo": 0.1, "hi": 0.2}  # at the edge: itself
    assert scores(rows, "l2").set_index("value").score[0.3] == -math.inf
    rows.loc[rows.l2 == 0.2, "final_val_acc"] = 0.90  # now the middle value wins: its neighbours bound the draws
    assert best(rows, "l2") | {} == {"value": 0.2, "score": pytest.approx(0.90), "lo": 0.1, "hi": 0.3}
    with pytest.raises(ValueError, match="no run finished"):
        best(table([(0.1, 0, "diverged", 0.5)]), "l2")


def test_draws_are_seeded_in_range_and_do_not_depend_on_how_many_are_asked_for():
    draws = [draw(0.01, 0.02, i) for i in range(1, 21)]
    assert all(0.01 <= d <= 0.02 for d in draws) and len(set(draws)) == 20
    assert draws == list(np.random.default_rng(0).uniform(0.01, 0.02, size=20))
    assert draw(0.01, 0.02, 5, seed=1) != draws[4]


def test_resolve_records_what_a_stage_handed_over(tmp_path, make_spec):
    rows = table([(0.1, 0, "ok", 0.8), (0.2, 0, "ok", 0.9), (0.3, 0, "ok", 0.85)])
    assert resolve("l2", "best-coarse", rows)["value"] == 0.2
    record = resolve("l2", "draw2-coarse", rows)
    assert record["range"] == [0.1, 0.3] and record["value"] == draw(0.1, 0.3, 2) and record["draw_seed"] == 0
    (tmp_path / "coarse").mkdir()
    rows.to_csv(tmp_path / "coarse" / SEARCH_TABLE, index=False)
    spec = make_spec(l2="draw2-coarse")
    trained, used = resolve_picks(spec, {"coarse": tmp_path / "coarse"})
    assert trained.l2 == record["value"] and used["l2"]["study"] == "coarse" and spec.l2 == "draw2-coarse"
    with pytest.raises(ValueError, match="refers to study 'coarse'"):
        resolve_picks(spec, {})


def test_a_stage_names_the_value_the_search_goes_on_from_by_the_searchs_measure(tmp_path, make_spec):
    """Stage 1's section names the value stage 2 starts from (highest final validation accuracy), not the
    highest best curve point, which can be another value; the sentence follows the search's measure."""
    from types import SimpleNamespace

    from bnlab.analyses.summary import plan_params, search_source_findings

    runs = [make_spec(l2=v) for v in (0.001, 0.01, 0.1)]

    def findings_with(final_val_accs):
        for run, final in zip(runs, final_val_accs):
            folder = tmp_path / run.relative_dir()
            folder.mkdir(parents=True, exist_ok=True)
            # best curve point highest at l2 = 0.1 in both cases: the search must not follow it
            (folder / "metrics.json").write_text(json.dumps({"status": "ok", "final_val_acc": final,
                                                             "best_val_acc": 0.99 if run.l2 == 0.1 else 0.5,
                                                             "final_test_acc": final}))
        ctx = SimpleNamespace(study=SimpleNamespace(name="coarse", runs=runs), run_root=tmp_path,
                              extra={"search_next": {"l2": ["fine"]}})
        return " ".join(search_source_findings(ctx))

    assert "goes on from l2 = 0.01: its runs reached the highest final validation accuracy (whole split), " \
           "90.0%" in findings_with([0.8, 0.9, 0.7])
    assert "goes on from l2 = 0.001:" in findings_with([0.95, 0.9, 0.7])
    assert "the next stage ('fine') starts from it" in findings_with([0.95, 0.9, 0.7])
    # which studies go on from which: read off the plan's references
    plan = build_plan(three_stages())
    assert plan_params(plan, plan.studies["coarse"]) == {"search_next": {"l2": ["fine"]}}
    assert plan_params(plan, plan.studies["fine"]) == {"search_next": {"l2": ["final"]}}
    assert plan_params(plan, plan.studies["final"]) == {"search_next": {}}


# ------------------------------------------------------------------ the analysis's verdicts
def stages(fine_acc: float, final_acc: float) -> pd.DataFrame:
    coarse = [(v, 0, "ok", a) for v, a in ((0.01, 0.80), (0.02, 0.84), (0.03, 0.81))]
    fine = [(v, 0, "ok", a) for v, a in ((0.015, 0.83), (0.018, fine_acc), (0.025, 0.82))]
    frames = [table(coarse).assign(stage=1, study="coarse"), table(fine).assign(stage=2, study="fine"),
              table([(0.018, 0, "ok", final_acc)]).assign(stage=3, study="final")]
    return pd.concat(frames, ignore_index=True)


def test_a_finer_stage_within_noise_is_reported_as_finding_nothing_new():
    summary = stage_summaries(stages(fine_acc=0.845, final_acc=0.85), "l2", val_size=5000)
    text = " ".join(findings(summary, "l2"))
    assert "within two standard errors: the finer stage found nothing the coarse grid had not" in text
    assert measures(summary)["fine_gain"][0]["value"] == pytest.approx(0.005)
    assert measures(summary)["final_gain"][0]["value"] == pytest.approx(0.005)
    assert summary[0]["close"] == 1  # 0.81 and 0.80 are more than 2 s.e. (about 1 point) below 0.84


def test_a_finer_stage_beyond_noise_is_reported_as_a_better_value():
    summary = stage_summaries(stages(fine_acc=0.88, final_acc=0.86), "l2", val_size=5000)
    text = " ".join(findings(summary, "l2"))
    assert "beyond two standard errors: the finer stage found a better value" in text
    assert measures(summary)["final_gain"][0]["value"] == pytest.approx(-0.02)
    assert "-2.0 points of final validation accuracy (whole split)" in text and "(beyond two standard errors)" in text


# ------------------------------------------------------------------ the hand-off through the workflow
def snakemake(*args):
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def train_outputs(dry_run: str) -> set[str]:
    """Run folders the dry run would (re)train, from its train and fused jobs' outputs."""
    folders = set()
    for block in dry_run.split("\nrule ")[1:]:
        if block.startswith(("train:", "fused_")):
            for line in block.splitlines():
                if line.strip().startswith("output:"):
                    folders |= {str(Path(p.strip()).parent) for p in line.split(":", 1)[1].split(",")}
    return folders


def test_a_new_stage_1_outcome_retrains_exactly_stages_2_and_3(tmp_path):
    cfg = three_stages()
    cfg["results"] = str(tmp_path / "res")
    cfg["data"] = {"val_size": 300}
    cfg["studies"]["other"] = {"title": "other", "question": "q", "grid": {"bn": ["none", "hidden"]}}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = snakemake("--cores", "2", "--configfile", str(path))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    plan = build_plan(cfg)
    runs = tmp_path / "res" / "runs"
    folder = {name: {str(runs / r.relative_dir()) for r in plan.studies[name].runs} for name in plan.studies}

    # each stage trained with what the one before handed over
    coarse = pd.read_csv(tmp_path / "res" / "picks" / "coarse" / SEARCH_TABLE)
    top = best(coarse, "l2")
    for r in plan.studies["fine"].runs:
        picked = json.loads((runs / r.relative_dir() / "metrics.json").read_text())["picked"]["l2"]
        assert picked["value"] == pytest.approx(draw(top["lo"], top["hi"], search_ref(r.l2)[1]))
    fine = pd.read_csv(tmp_path / "res" / "picks" / "fine" / SEARCH_TABLE)
    final = plan.studies["final"].runs[0]
    picked = json.loads((runs / final.relative_dir() / "metrics.json").read_text())["picked"]["l2"]
    assert picked["value"] == pytest.approx(best(fine, "l2")["value"])
    assert (tmp_path / "res" / "studies" / "final" / "search" / "search.png").is_file()
    # the report names stage 2's runs by the values they trained with, not draw<i>-coarse
    labels = pd.read_csv(tmp_path / "res" / "studies" / "fine" / "summary" / "runs.csv").label
    assert len(labels) == 3 and not labels.str.contains("draw").any() and labels.str.match(r"l2=[0-9.e-]+$").all()
    # stage 1's section and stage 2's name the same value as the one the search went on from
    coarse_text = " ".join(json.loads((tmp_path / "res" / "studies" / "coarse" / "summary" / "fragment.json")
                                      .read_text())["findings"])
    fine_text = " ".join(json.loads((tmp_path / "res" / "studies" / "fine" / "summary" / "fragment.json")
                                    .read_text())["findings"])
    assert f"goes on from l2 = {top['value']:.3g}:" in coarse_text
    assert f"study 'coarse''s best value {top['value']:.3g}:" in fine_text

    again = snakemake("-n", "--configfile", str(path))
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]

    # stage 1 comes out differently (here: one of its runs is rewritten with another accuracy)
    first = runs / plan.studies["coarse"].runs[0].relative_dir() / "metrics.json"
    metrics = json.loads(first.read_text())
    first.write_text(json.dumps({**metrics, "final_val_acc": 1.0}))
    dry = snakemake("-n", "--configfile", str(path))
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    assert train_outputs(dry.stdout) == folder["fine"] | folder["final"]


def test_a_stage_of_draws_is_labelled_by_the_values_its_runs_trained_with():
    from bnlab.analyses.collect import searched_labels

    study = build_plan(three_stages()).studies["fine"]

    def write(values):
        metrics = {run.relative_dir(): {"picked": {"l2": {"kind": "draw", "value": value}}}
                   for run, value in zip(study.runs, values)}
        return [searched_labels(study, metrics)[r.relative_dir()] for r in study.runs]

    assert write([0.0123456, 0.0456789, 0.0789012]) == ["l2=0.0123", "l2=0.0457", "l2=0.0789"]
    # values that 3 digits would merge get as many as keep every run its own label
    assert write([0.0123456, 0.0123478, 0.0789012]) == ["l2=0.012346", "l2=0.012348", "l2=0.078901"]
    # a study without searched values keeps its labels
    coarse = build_plan(three_stages()).studies["coarse"]
    unpicked = {run.relative_dir(): {"picked": {}} for run in coarse.runs}
    assert list(searched_labels(coarse, unpicked).values()) == [coarse.label(r) for r in coarse.runs]


def test_the_report_shows_a_stage_of_draws_as_its_range():
    from bnlab.report.context import _axis_text

    draws = [f"draw{i}-l2_coarse" for i in range(1, 21)]
    assert _axis_text(draws) == "20 values drawn at random near the best of study 'l2_coarse' (the summary lists them)"
    # anything else is listed value by value: numbers, a gap in the draws, draws of two studies
    assert _axis_text(["1e-05", "0.001"]) == "1e-05, 0.001"
    # a linspace axis (values rounded to 6 significant digits) as its ends; an uneven one listed
    even = ["1e-05", "0.00527263", "0.0105353", "0.0157979", "0.0210605", "0.0263232", "0.0315858"]
    assert _axis_text(even) == "7 values evenly spaced from 1e-05 to 0.0315858"
    uneven = ["1e-05", "0.0001", "0.001", "0.01", "0.1", "0.2", "0.3"]
    assert _axis_text(uneven) == ", ".join(uneven)
    gap = ["draw1-a", "draw2-a", "draw4-a"]
    assert _axis_text(gap) == ", ".join(gap)
    mixed = ["draw1-a", "draw2-a", "draw3-b"]
    assert _axis_text(mixed) == ", ".join(mixed)
