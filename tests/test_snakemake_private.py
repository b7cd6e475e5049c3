"""The workflow's only uses of Snakemake internals (bnlab/snakemake_private.py), pinned to the installed
Snakemake: an upgrade fails here first, naming what to re-check, instead of silently changing the workflow."""

import inspect
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import snakemake
import snakemake.api  # noqa: F401  (first: snakemake.workflow and snakemake.rules import each other)
from snakemake.rules import Rule
from snakemake.workflow import Workflow

from bnlab import snakemake_private as private

ROOT = Path(__file__).resolve().parents[1]


def test_the_installed_snakemake_is_the_one_these_were_checked_with():
    # On an upgrade: check each function's "Breaks as" against the new Snakemake, then move TESTED_WITH.
    assert snakemake.__version__ == private.TESTED_WITH
    assert f"snakemake[reports]=={private.TESTED_WITH}" in (ROOT / "requirements.txt").read_text()


def test_the_internals_read_exist_in_the_installed_snakemake():
    workflow_source = inspect.getsource(Workflow)
    for attribute in ("overwrite_configfiles", "deployment_settings", "is_main_process", "local_exec"):
        assert re.search(rf"\b{attribute}\b", workflow_source), f"Workflow.{attribute} is gone"
    assert re.search(r"\brun_func_src\b", inspect.getsource(Rule)), "Rule.run_func_src is gone"


def test_nothing_else_in_the_workflow_touches_them():
    out = subprocess.run(["grep", "-rnE", "run_func_src|overwrite_configfiles|deployment_settings|is_main_process|"
                          "local_exec|threading.Timer", "Snakefile", "rules/"], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.stdout == "", out.stdout


def test_the_helpers_read_what_they_say():
    conda = SimpleNamespace(name="CONDA")

    def workflow(main=True, local=True, methods=()):
        return SimpleNamespace(is_main_process=main, local_exec=local,
                               deployment_settings=SimpleNamespace(deployment_method=list(methods)))

    assert private.runs_jobs_in_this_process_tree(workflow())
    assert not private.runs_jobs_in_this_process_tree(workflow(local=False))  # a cluster executor
    assert not private.runs_jobs_in_this_process_tree(workflow(main=False))  # a job's own snakemake
    assert not private.runs_jobs_in_this_process_tree(workflow(methods=[conda]))
    assert private.configfile_given(SimpleNamespace(overwrite_configfiles=["smoke.yaml"]))
    assert not private.configfile_given(SimpleNamespace(overwrite_configfiles=[]))
    rules = {name: SimpleNamespace(run_func_src=f"src {name}") for name in ("train", "fused_a", "fused_b")}
    private.share_code_record(SimpleNamespace(get_rule=rules.__getitem__), ["fused_a", "fused_b"], like="train")
    assert {r.run_func_src for r in rules.values()} == {"src train"}
