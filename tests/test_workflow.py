"""The Snakemake workflow end to end: lint, config refusal, smoke run to PDF, re-runs."""

import os
import subprocess
import sys
from pathlib import Path

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
                   "scikit-learn digits", "bn=hidden", "No run diverged"):
        assert needle in text, needle
    images = sum(len(page.images) for page in reader.pages)
    assert images >= 1

    # Re-running changes nothing ...
    again = snakemake("-n", *args)
    assert "Nothing to be done" in again.stdout + again.stderr
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
