"""The Snakemake workflow end to end: lint, config refusal, smoke run to PDF, re-runs."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pypdf import PdfReader

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(*args, timeout=600):
    return subprocess.run([*SNAKEMAKE, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_lint_is_clean():
    out = snakemake("--lint", "--configfile", "config/smoke.yaml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "good condition" in out.stdout + out.stderr


WORKFLOW_FILES = ["Snakefile", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "rules").glob("*.smk"))]


def snakefmt_check(*paths):
    """snakefmt --check with the project's settings (pyproject.toml [tool.snakefmt])."""
    tool = Path(sys.executable).parent / "snakefmt"
    return subprocess.run([str(tool), "--check", "--config", str(ROOT / "pyproject.toml"), *map(str, paths)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_workflow_files_are_snakefmt_clean(tmp_path):
    out = snakefmt_check(*WORKFLOW_FILES)
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(WORKFLOW_FILES) == 6
    # the check fails on a badly formatted copy (directives out of snakefmt's order)
    broken = tmp_path / "Snakefile"
    text = (ROOT / "rules" / "train.smk").read_text()
    broken.write_text(text.replace("    log:\n", "    log :\n", 1))
    assert snakefmt_check(broken).returncode != 0


@pytest.mark.parametrize("config", ["config.yaml", "config/smoke.yaml", "config/full.yaml", "config/reproduce.yaml"])
def test_every_shipped_config_plans_a_dry_run(config, tmp_path):
    """Snakemake plans each shipped config from an empty results folder, every training run exactly once:
    a `train` job of its own or a member of one fused group's job."""
    from bnlab.config import load_config
    from bnlab.fusion import fused_groups, fusion_policy
    from bnlab.workflow import load_plan

    results = tmp_path / "res"
    plan = load_plan({**load_config(ROOT / config), "results": str(results)})
    out = snakemake("-n", "--configfile", config, "--config", f"results={results}")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", out.stdout, re.M))
    groups = fused_groups(plan.runs, *fusion_policy(plan.config["execution"]))
    assert sorted(k for k in jobs if k.startswith("fused_")) == sorted(g.name for g in groups)
    assert int(jobs.get("train", 0)) + sum(len(g.runs) for g in groups) == len(plan.runs)
    assert jobs["report"] == "1"


def test_bad_config_stops_before_any_job(tmp_path):
    cfg = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
    cfg["results"] = str(tmp_path / "res")
    cfg["studies"]["smoke_bn"]["fixed"] = {"lr": -0.1}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    out = snakemake("--cores", "1", "--configfile", str(bad))
    assert out.returncode != 0
    assert "studies.smoke_bn.fixed.lr" in out.stdout + out.stderr
    assert not (tmp_path / "res").exists()  # nothing was run


def test_snakemake_exits_when_the_workflow_ends_despite_the_profiles_long_rate_limit_timers(tmp_path):
    # the default profile's timespan is long (so that the scheduler does not re-plan many times a second);
    # each scheduling round leaves a non-daemon timer of that length, which the Snakefile cancels at the
    # end: without that the process would wait ten minutes before exiting, past this call's timeout
    profile = yaml.safe_load((ROOT / "profiles/default/config.yaml").read_text())
    assert profile["max-jobs-per-timespan"] == "1000/10m"
    results = tmp_path / "res"
    out = snakemake(f"{results}/data/digits.pt", "--cores", "1", "--configfile", "config/smoke.yaml",
                    "--config", f"results={results}", timeout=240)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert (results / "data" / "digits.pt").exists()


@pytest.mark.slow
def test_smoke_config_builds_the_report(tmp_path):
    results = tmp_path / "res"
    args = ("--configfile", "config/smoke.yaml", "--config", f"results={results}")
    out = snakemake("--cores", "2", *args)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    pdf = results / "report.pdf"
    reader = PdfReader(pdf)
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert len(reader.pages) >= 3
    for needle in ("Smoke: batch norm on a small MLP", "Findings", "Appendix: provenance",
                   "scikit-learn digits", "bn=hidden", "No run diverged",
                   "Smoke: growing batch against lr decay", "Generalisation: the growing-batch model is",
                   "lr from smoke_lr (sweep)", "Rates written pick-smoke_lr are those the sweep LR range test"):
        assert needle in text, needle
    # the growing-batch runs trained with the range test's pick, and accumulated above the memory cap
    picks = pd.read_csv(results / "picks" / "smoke_lr" / "lr_range.csv")
    # the lr_range analysis reports the same picks the runs trained with
    pd.testing.assert_frame_equal(picks, pd.read_csv(results / "studies" / "smoke_lr" / "lr_range" / "lr_range.csv"))
    growth = pd.read_csv(results / "studies" / "smoke_growth" / "batch_growth" / "batch_growth_runs.csv")
    assert growth.lr_first.iloc[0] == pytest.approx(picks[picks.curve == "sweep"].lr_max.iloc[0])
    assert growth.max_micro_batches.max() > 1
    images = sum(len(page.images) for page in reader.pages)
    assert images >= 1
    # every train and analysis job ran in a fork of the warm server (bnlab/warm.py), which stopped at the end
    served = (results / "logs" / "warm_server.log").read_text()
    import json

    metrics = [json.loads(p.read_text()) for p in (results / "runs").rglob("metrics.json")]
    # small MLPs train fused on a CPU (execution.fuse auto): one job per group, the others one per run
    groups = sum(1 for m in metrics if m.get("fused") and m["fused"]["position"] == 0)
    assert groups >= 1 and served.count("bnlab.train.job:train_fused_job") == groups
    assert served.count("bnlab.train.job:train_job") == sum("fused" not in m for m in metrics)
    assert "bnlab.analyses.runner:analysis_job" in served and "warm server: stopped" in served

    # `snakemake --report`: a zip with the PDF, and every figure and table of the analyses with its caption
    check_snakemake_report(results, args, tmp_path / "report.zip")

    # Re-running changes nothing ...
    again = snakemake("-n", *args)
    assert "Nothing to be done" in again.stdout + again.stderr
    # ... but a study's edited title (drawn in its figures, printed in the report) re-runs that study's
    # analyses and the report, never training: the rules carry the study as plain data (bnlab/config.py)
    edited = tmp_path / "edited.yaml"
    edited.write_text((ROOT / "config" / "smoke.yaml").read_text().replace(
        '"Smoke: batch norm on a small MLP"', '"Smoke: batch norm on a small MLP, retitled"'))
    retitled = snakemake("-n", "--configfile", str(edited), "--config", f"results={results}").stdout
    assert "rule train:" not in retitled and "rule report:" in retitled, retitled[-2000:]
    studies = set(re.findall(r"study=(\w+), analysis=", retitled))
    assert studies == {"smoke_bn"}, studies
    assert "params have changed since last execution" in retitled
    # After a failure (a run's files and everything downstream of it missing), exactly the
    # missing cell is retrained: one job per cell, warm server or not.
    import shutil

    victim = sorted((results / "runs").rglob("metrics.json"))[0]
    victim.unlink()
    shutil.rmtree(results / "studies")
    (results / "report.pdf").unlink()
    one = snakemake("-n", *args)
    assert one.stdout.count("rule train:") == 1, one.stdout[-2000:]
    assert snakemake("--cores", "2", *args).returncode == 0
    assert victim.exists() and "Nothing to be done" in snakemake("-n", *args).stdout
    # A new range test result retrains exactly the runs that use its picks.
    table = results / "picks" / "smoke_lr" / "lr_range.csv"
    picks.loc[picks.curve == "sweep", "lr_max"] *= 0.5  # as if the range test had picked another lr_max
    picks.to_csv(table, index=False)
    trains = snakemake("-n", *args)
    assert trains.stdout.count("rule train:") == 3, trains.stdout[-2000:]  # the 3 smoke_growth runs
    assert "rule lr_picks:" not in trains.stdout  # the picks themselves are not redone
    assert snakemake("--cores", "2", *args).returncode == 0
    growth = pd.read_csv(results / "studies" / "smoke_growth" / "batch_growth" / "batch_growth_runs.csv")
    assert growth.lr_first.iloc[0] == pytest.approx(picks[picks.curve == "sweep"].lr_max.iloc[0])
    # ... and editing the template re-renders the report without retraining.

    # (Snakemake 9 compares input checksums, so the edit must change content.)
    template = ROOT / "report" / "template.html.j2"
    original_text, original_stat = template.read_text(), template.stat()
    try:
        template.write_text(original_text + "{# edited by test_workflow #}\n")
        plan = snakemake("-n", "--quiet", "rules", *args)
        assert "report" in plan.stdout and "train" not in plan.stdout, plan.stdout
    finally:
        template.write_text(original_text)
        os.utime(template, (original_stat.st_atime, original_stat.st_mtime))

    # Editing code an analysis uses (a figure module, imported by the summary
    # analysis) re-runs that analysis in every study and the report, never training.
    figure_code = ROOT / "bnlab" / "figures" / "curves.py"
    original_text, original_stat = figure_code.read_text(), figure_code.stat()
    try:
        figure_code.write_text(original_text + "# edited by test_workflow\n")
        plan = snakemake("-n", *args)
        jobs = plan.stdout
        assert "rule train:" not in jobs and "rule report:" in jobs, jobs[-2000:]
        assert jobs.count("rule analysis:") == 3, jobs[-3000:]  # the learning curves of the 3 studies
        assert "study=smoke_bn, analysis=learning_curves" in jobs
        assert "analysis=summary" not in jobs and "analysis=lr_range" not in jobs
    finally:
        figure_code.write_text(original_text)
        os.utime(figure_code, (original_stat.st_atime, original_stat.st_mtime))


def check_snakemake_report(results, args, zip_path):
    """`snakemake --report` from a finished results folder: the PDF, every figure with the caption its analysis
    wrote, and the CSV tables."""
    import html
    import json
    import zipfile

    out = snakemake(*args, "--report", str(zip_path))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        page = archive.read(next(n for n in names if n.endswith("/report.html"))).decode()
    files = [Path(n).name for n in names if "/data/raw/" in n]
    assert "report.pdf" in files
    assert "System Message" not in page  # a caption docutils could not read shows its complaint

    def caption_shown(path: Path) -> str:
        """The caption the page gives the file at `path` (its results are a JSON map from path to record)."""
        at = page.index(json.dumps(str(path)) + ": {")
        record, _ = json.JSONDecoder().raw_decode(page, at + len(json.dumps(str(path))) + 2)
        return html.unescape(re.sub(r"<[^>]+>", "", record["caption"])).strip()

    figures = 0
    for fragment_file in (results / "studies").glob("*/*/fragment.json"):
        for figure in json.loads(fragment_file.read_text())["figures"]:
            assert caption_shown(fragment_file.parent / figure["file"]) == " ".join(figure["caption"].split())
            figures += 1
    assert figures and sum(name.endswith(".png") for name in files) == figures
    summaries = sorted((results / "studies").glob("*/summary"))
    assert files.count("summary.csv") == len(summaries) > 0
    assert caption_shown(summaries[0] / "summary.csv").startswith("One row per setting")


def test_the_slurm_profile_submits_no_arrays_while_train_jobs_differ_in_resources():
    """The pinned plugin gives every task of an array the first job's resources (README, "No job arrays"):
    with full.yaml's per-study runtimes an array of train jobs would cut the long runs off."""
    from bnlab.config import build_plan, load_config

    plan = build_plan(load_config(ROOT / "config/full.yaml"))
    distinct = {tuple(sorted(plan.run_resources(run).items())) for run in plan.runs}
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    assert len(distinct) > 1  # the reason: full.yaml's train jobs ask for different resources
    assert not any("array" in key for key in profile), "train jobs differ in resources: see README, No job arrays"


def test_slurm_profile_dry_run_shows_each_studys_cluster_resources(tmp_path):
    """A GPU-less dry check of what the SLURM profile would ask for: execution's requests, raised per study."""
    cfg = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
    cfg["results"] = str(tmp_path / "res")
    cfg["execution"] = {**cfg.get("execution", {}), "mem_mb": 3000, "runtime_min": 45, "gpus_per_run": 0}
    name = next(iter(cfg["studies"]))
    cfg["studies"][name]["resources"] = {"runtime_min": 240, "gpus_per_run": 1, "mem_mb": 6000}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = snakemake("-n", "--profile", "profiles/slurm", "--configfile", str(path))
    assert out.returncode == 0, out.stdout + out.stderr
    train = [block for block in out.stdout.split("\n\n") if "rule train:" in block]
    requests = {(("mem_mb=6000" in b), ("runtime=240" in b), ("gpu=1," in b or b.rstrip().endswith("gpu=1")))
                for b in train}
    # the study's runs ask for its resources; runs only other studies train keep execution's
    assert (True, True, True) in requests
    assert any("mem_mb=3000" in b and "runtime=45" in b and "gpu=0" in b for b in train)


def _fused_config(tmp_path, fuse=2, seeds=(0, 1), **execution):
    cfg = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
    cfg["results"] = str(tmp_path / "res")
    cfg["execution"] = {**cfg.get("execution", {}), "fuse": fuse, **execution}
    cfg["studies"] = {"smoke_bn": cfg["studies"]["smoke_bn"]}  # 2 cells x 2 seeds: 2 fused groups of 2
    cfg["studies"]["smoke_bn"]["seeds"] = list(seeds)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_fused_jobs_write_each_members_folder_and_a_rerun_retrains_nothing(tmp_path):
    path = _fused_config(tmp_path)
    plan = snakemake("-n", "--configfile", str(path))
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert plan.stdout.count("rule fused_") == 2 and "rule train:" not in plan.stdout
    run = snakemake("--cores", "2", "--configfile", str(path))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    metrics = sorted((tmp_path / "res" / "runs").rglob("metrics.json"))
    assert len(metrics) == 4
    import json

    fused = [json.loads(m.read_text())["fused"] for m in metrics]
    assert sorted(f["position"] for f in fused) == [0, 0, 1, 1] and {f["members"] for f in fused} == {2}
    assert all((m.parent / "train.log").read_text().startswith("fused group fused_") for m in metrics)
    # finished members are planned by `train` now: same script, inputs and params, so nothing reruns
    again = snakemake("-n", "--configfile", str(path))
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]


def test_a_group_whose_job_died_between_members_trains_only_the_rest_under_its_name(tmp_path):
    # 2 cells x 3 seeds, fuse 3: 2 groups of 3. One group's job "died" after writing its first member: the
    # next read of the workflow plans the same rule (name) for the two members left, and the finished one
    # is not trained again.
    path = _fused_config(tmp_path, fuse=3, seeds=(0, 1, 2))
    plan = snakemake("-n", "--configfile", str(path))
    assert plan.returncode == 0, plan.stdout + plan.stderr
    names = sorted(set(re.findall(r"rule (fused_[0-9a-f]+):", plan.stdout)))
    assert len(names) == 2
    run = snakemake("--cores", "2", "--configfile", str(path))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    import json

    members = {}
    for m in sorted((tmp_path / "res" / "runs").rglob("metrics.json")):
        members.setdefault(json.loads(m.read_text())["fused"]["group"], []).append(m.parent)
    assert sorted(members) == names and all(len(folders) == 3 for folders in members.values())
    kept, *lost = members[names[0]]
    kept_written = (kept / "metrics.json").stat().st_mtime_ns
    for folder in lost:
        shutil.rmtree(folder)
    # the report is still there, so ask for the lost folders (Snakemake leaves missing intermediates be)
    targets = [str(folder / "metrics.json") for folder in lost] + [str(kept / "metrics.json")]
    again = snakemake("-n", *targets, "--configfile", str(path))
    assert again.returncode == 0, again.stdout + again.stderr
    assert re.findall(r"rule (fused_[0-9a-f]+):", again.stdout) == [names[0]]
    assert "rule train:" not in again.stdout
    rerun = snakemake("--cores", "2", *targets, "--configfile", str(path))
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert all((folder / "metrics.json").exists() for folder in lost)
    assert (kept / "metrics.json").stat().st_mtime_ns == kept_written
    assert json.loads((lost[0] / "metrics.json").read_text())["fused"]["members"] == 2


def test_slurm_dry_run_shows_a_fused_jobs_resources(tmp_path):
    path = _fused_config(tmp_path, fuse=8, device="cuda", gpus_per_run=1, mem_mb=8000, runtime_min=90)
    out = snakemake("-n", "--profile", "profiles/slurm", "--configfile", str(path))
    assert out.returncode == 0, out.stdout + out.stderr
    fused = [block.split("\n[")[0] for block in out.stdout.split("rule ")[1:] if block.startswith("fused_")]
    assert len(fused) == 2
    assert all("gpu=1" in b and "mem_mb=8000" in b and "runtime=90" in b for b in fused)
