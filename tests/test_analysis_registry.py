"""Analyses as plug-ins: the registry, option validation, a test-only analysis in a built PDF, partial reports."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from pypdf import PdfReader

from bnlab.analyses import get_analysis, list_analyses, resolve_study_analyses
from bnlab.config import ConfigError, build_plan
from bnlab.workflow import analysis_code, load_plan

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

PLUGIN = '''
"""A test-only analysis: counts runs and steps, with one option."""
import pandas as pd

from bnlab.analyses import Analysis, fragment, register, table
from bnlab.runfolder import METRICS, read_json


def compute(ctx):
    rows = [{"seed": r.seed, "steps": read_json(ctx.run_dir(r) / METRICS)["steps"]} for r in ctx.study.runs]
    pd.DataFrame(rows).to_csv(ctx.out / "steps.csv", index=False)


def make_fragment(ctx):
    steps = pd.read_csv(ctx.out / "steps.csv")
    word = ctx.options["word"]
    return fragment(findings=[f"{word}: {len(steps)} runs took {int(steps.steps.sum())} optimizer steps in all."],
                    tables=[table("Steps per run (test plug-in).", ["seed", "steps"], steps.values.tolist())],
                    references=["The test suite 2026"])


register(Analysis(name="step_count", description="steps per run (a test plug-in)", compute=compute,
                  fragment=make_fragment, reads=(METRICS,),
                  options={"word": {"type": "string", "default": "Counted", "description": "first word"}}))
'''


def tiny_config(results: Path, **study) -> dict:
    return {
        "results": str(results),
        "data": {"val_size": 300},
        "defaults": {"dataset": "digits", "model": "mlp", "widths": [16], "epochs": 1, "batch_size": 64,
                     "evals_per_epoch": 1},
        "studies": {"tiny": {"title": "Tiny study", "question": "Does a plug-in section reach the PDF?",
                             "grid": {"bn": ["none", "hidden"]}, "seeds": [0], **study}},
    }


def snakemake(*args, timeout=600):
    return subprocess.run([*SNAKEMAKE, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def pdf_text(path: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


# ------------------------------------------------------------- registry
def test_every_builtin_analysis_is_registered_with_its_declaration():
    names = list_analyses()
    for name in ("summary", "learning_curves", "bn_curves", "speedup", "bn_params", "landscape", "lr_range",
                 "batch_growth", "arch", "gradcheck"):
        assert name in names
        entry = get_analysis(name)
        assert entry.module == f"bnlab.analyses.{name}"
        assert all(need in names for need in entry.needs)
        # its own module is among the code its job depends on
        assert f"bnlab/analyses/{name}.py" in analysis_code(name)
    assert not get_analysis("arch").trains and get_analysis("speedup").needs == ("summary",)
    with pytest.raises(KeyError, match="unknown analysis 'nope'"):
        get_analysis("nope")


def test_figure_code_is_a_dependency_of_the_analysis_that_draws_it_only():
    assert "bnlab/figures/curves.py" in analysis_code("learning_curves")
    assert "bnlab/figures/curves.py" not in analysis_code("speedup")


def test_needs_are_added_before_their_users_and_options_get_defaults(tmp_path):
    plan = load_plan(tiny_config(tmp_path, analyses=["speedup", {"landscape": {"probe_lr": 0.01}}]))
    study = plan.studies["tiny"]
    assert study.analyses == ["summary", "learning_curves", "speedup", "landscape"]
    assert study.analysis_options["landscape"] == {"probe_lr": 0.01}
    assert study.analysis_options["speedup"] == {}


@pytest.mark.parametrize("analyses, field", [
    (["nope"], "studies.tiny.analyses': unknown analysis 'nope'"),
    ([{"landscape": {"probe_rate": 1}}], "studies.tiny.analyses.landscape.probe_rate': analysis 'landscape' has no "
                                         "option 'probe_rate'; its options: probe_lr"),
    ([{"landscape": {"probe_lr": -1}}], "studies.tiny.analyses.landscape.probe_lr'"),
    (["speedup", "speedup"], "studies.tiny.analyses[1]': analysis 'speedup' is listed twice"),
])
def test_bad_analysis_entries_name_the_field(tmp_path, analyses, field):
    with pytest.raises(ConfigError, match="config error at '" + field.replace("[", r"\[").replace("]", r"\]")
                       .replace("(", r"\(").replace(")", r"\)")):
        load_plan(tiny_config(tmp_path, analyses=analyses))


def test_an_analysis_that_reads_runs_is_refused_in_a_study_that_trains_none(tmp_path):
    cfg = tiny_config(tmp_path)
    cfg["studies"]["acc"] = {"title": "t", "question": "q", "kind": "arch"}
    plan = build_plan(cfg)
    arch = plan.studies["acc"]
    assert resolve_study_analyses(arch).analyses == ["arch"]
    arch.analyses = ["arch", "speedup"]
    with pytest.raises(ConfigError, match="analysis 'summary' reads training runs"):
        resolve_study_analyses(arch)


def test_a_missing_plugin_file_is_a_config_error(tmp_path):
    cfg = tiny_config(tmp_path)
    cfg["analysis_plugins"] = [str(tmp_path / "absent.py")]
    with pytest.raises(ConfigError, match=r"analysis_plugins\[0\]"):
        load_plan(cfg)


# ------------------------------------------------------------ end to end
@pytest.mark.slow
def test_a_test_only_analysis_reaches_the_pdf(tmp_path):
    """Adding an analysis is one module plus the config."""
    plugin = tmp_path / "step_count.py"
    plugin.write_text(textwrap.dedent(PLUGIN))
    results = tmp_path / "res"
    cfg = tiny_config(results, analyses=[{"step_count": {"word": "Plug-in counted"}}])
    cfg["analysis_plugins"] = [str(plugin)]
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = snakemake("--cores", "2", "--configfile", str(config))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = pdf_text(results / "report.pdf")
    # 1 epoch of (1437 - 300) images in batches of 64, drop-last: 17 steps a run, 2 runs
    assert "Plug-in counted: 2 runs took 34 optimizer steps in all." in text
    assert "Steps per run (test plug-in)." in text and "The test suite 2026" in text
    # the HTML names its images relative to the results folder, so a moved folder keeps them
    html = (results / "report.html").read_text()
    assert "file://" not in html and 'src="studies/tiny/learning_curves/learning_curves.png"' in html
    # editing the plug-in re-runs it and the report, nothing else
    plugin.write_text(plugin.read_text() + "# edited\n")
    plan = snakemake("-n", "--configfile", str(config))
    assert plan.stdout.count("rule analysis:") == 1 and "analysis=step_count" in plan.stdout, plan.stdout[-2000:]
    assert "rule train:" not in plan.stdout


@pytest.mark.slow
def test_a_crashed_run_leaves_a_partial_report_and_the_strict_one_refuses(tmp_path):
    results = tmp_path / "res"
    # Batch growth under a memory cap too small for 2 samples raises in the trainer: a crash, not a divergence.
    cfg = tiny_config(results, grid=[{"bn": ["none", "hidden"]},
                                     {"batch_growth_every": [2], "batch_growth_max": [128], "batch_mem_mb": [1e-6]}])
    config = tmp_path / "crash.yaml"
    config.write_text(yaml.safe_dump(cfg))
    strict = snakemake("--cores", "2", "--keep-going", "--configfile", str(config))
    assert strict.returncode != 0 and not (results / "report.pdf").exists()
    out = snakemake("partial_report", "--cores", "2", "--configfile", str(config))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = pdf_text(results / "report-partial.pdf")
    assert "INCOMPLETE REPORT" in text
    assert "2 done, 0 diverged, 1 failed, 0 missing of 3 planned runs" in " ".join(text.split())
    assert "Completeness of this study's runs (2 done, 1 failed)." in " ".join(text.split())
    assert "Highest best validation accuracy (curve subset)" in text  # the finished runs are still analysed
    # the partial analyses live apart: the strict summary (which needs every run) was never written
    assert (results / "partial" / "studies" / "tiny" / "summary" / "fragment.json").exists()
    assert not (results / "studies" / "tiny" / "summary").exists()


@pytest.mark.parametrize("threads", [1, 2])
def test_an_analysis_job_runs_torch_on_its_snakemake_threads(tmp_path, monkeypatch, threads):
    """torch would take every core; beside a training job that oversubscribes them (a 5x slower check)."""
    import torch

    from bnlab.analyses import runner

    seen = []
    monkeypatch.setattr(runner, "run_analysis", lambda *a, **k: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(3 - threads)  # the other value, so the job must change it
    try:
        study = build_plan(tiny_config(tmp_path)).studies["tiny"]
        runner.analysis_job(study.to_data(), "summary", tmp_path / "studies" / "tiny" / "summary", {}, {}, [], threads=threads)
    finally:
        torch.set_num_threads(before)
    assert seen == [threads]
