"""Every place the workflow reads or sets a Snakemake internal, each behind one small function.

Snakemake has no public way to do these four things, and each was written for a measured reason (the
docstrings say which). Nothing else in Snakefile or rules/ touches Snakemake's private API, so an upgrade
that breaks one breaks it here; tests/test_snakemake_private.py pins each to the installed Snakemake and
says what would break. Imports nothing from bnlab or Snakemake: the workflow passes `workflow` in.
"""

from __future__ import annotations

import threading

TESTED_WITH = "9.27.1"  # the Snakemake these were checked against (requirements.txt pins it)


def configfile_given(workflow) -> bool:
    """Whether --configfile named a config on the command line (Workflow.overwrite_configfiles).

    The Snakefile loads config.yaml only when none was given: with `configfile:` always there, Snakemake
    would load config.yaml and merge the named one over it, mixing the default studies into smoke.yaml's.
    Breaks as: every --configfile run also gets config.yaml's studies (tests/test_workflow.py's smoke run
    would plan the default config's jobs)."""
    return bool(workflow.overwrite_configfiles)


def runs_jobs_in_this_process_tree(workflow) -> bool:
    """Whether the jobs of this invocation run on this machine, in this environment, started by this
    (main) Snakemake process: where the warm server (bnlab/warm.py) can serve them by forking.

    Reads Workflow.is_main_process, .local_exec and .deployment_settings (conda). Breaks as: the warm server
    never starts (jobs import torch themselves: slower, same results) or starts under a cluster executor
    (jobs on other nodes do not find it and run alone: same results)."""
    in_conda_env = any(m.name == "CONDA" for m in workflow.deployment_settings.deployment_method)
    return bool(workflow.is_main_process and workflow.local_exec and not in_conda_env)


def share_code_record(workflow, rule_names, like: str) -> None:
    """Give rules the code record (Rule.run_func_src) of rule `like`.

    Snakemake records a script rule's code as the text of its script directive. The fused rules run the same
    script as `train` but are written inside a loop, so their text differs by indentation alone; without
    train's record a finished member planned by `train` later would be retrained for "code changed".
    Breaks as: a re-run after a fused job retrains its members (tests/test_workflow.py checks it is a no-op)."""
    record = workflow.get_rule(like).run_func_src
    for name in rule_names:
        workflow.get_rule(name).run_func_src = record


def stop_rescheduling_timers() -> None:
    """Cancel the scheduler's pending re-evaluation timers (threading.Timer, its only use of them), so that
    the process exits now rather than when the last one fires (profiles/default says why they are long).

    Breaks as: Snakemake exits up to the profile's max-jobs-per-timespan window after the workflow ends
    (tests/test_workflow.py runs one job through the default profile with a timeout)."""
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()
