# Shared set-up: validate the config, expand studies into runs, path helpers.
import os
from dataclasses import asdict

from snakemake.exceptions import WorkflowError

from bnlab.analyses import get_analysis, list_analyses
from bnlab.analyses.registry import needs_of
from bnlab.analyses.runner import plan_extra
from bnlab.config import ConfigError
from bnlab.cost import size_rank
from bnlab.fusion import fused_groups, fusion_policy
from bnlab.workflow import analysis_code, code_files, load_plan, report_code
from bnlab.runfolder import OUTPUT_FILES
from bnlab.params import DIRECTORY_PARAMS, PARAM_FOR_KEY, PARAM_NAMES, PATH_KEYS, RunSpec, run_paramspaces, search_ref
from bnlab.report.snakemake_captions import AnalysisCaptions
from bnlab.schedules import PICKS_TABLE
from bnlab.snakemake_private import runs_jobs_in_this_process_tree, share_code_record, stop_rescheduling_timers
from bnlab.search import SEARCH_TABLE
from bnlab.step_times import STEP_TIMES_TABLE

try:
    PLAN = load_plan(config)  # studies expanded into runs, analyses resolved against the registry
except ConfigError as err:
    # No job is planned with a bad config; the message names the field.
    raise WorkflowError(str(err)) from None

R = PLAN.config["results"]
EXEC = PLAN.config["execution"]
REPORT_PDF = f"{R}/report.pdf"

# Paramspaces over every distinct run of every study: a run folder is keyed by
# its full resolved parameters, so studies asking for the same cell share it.
RUN_SPACES = run_paramspaces(PLAN.runs)  # network, optimizer, data/batch segments
RUN_DIR = f"{R}/runs/" + "/".join(space.wildcard_pattern for space in RUN_SPACES)
RUN_OUTPUTS = OUTPUT_FILES  # the run-folder contract (bnlab/runfolder.py)


wildcard_constraints:
    # Values never contain a slash or a tilde, and every key is preceded by "_" and
    # followed by "~", so "key~value_key~value" folder names parse unambiguously.
    **{PATH_KEYS[p]: "[^/~]+" for p in PARAM_NAMES if p not in DIRECTORY_PARAMS},
    dataset="[^/~]+",
    model="[^/~]+",
    study="|".join(PLAN.studies),
    analysis="|".join(list_analyses()),


# The runs whose outcome other runs train with (range tests, earlier search stages), then those
# runs, come first: they are the workflow's critical path (range test -> lr_picks -> runs at the
# picked rates; search stage -> search_picks -> next stage), and left to chance they end up last,
# training alone on one core while the other idles. Within each of these stages the bigger runs go
# first (bnlab.cost.size_rank), so the tail of the workflow is short runs, not one long one alone.
PICK_SOURCE_RUNS = {
    r.relative_dir() for study in {s for r in PLAN.runs for s in r.source_studies} for r in PLAN.studies[study].runs
}
PICKS_PRIORITY = 3000  # lr_picks and search_picks: above every training run, the next stage waits for them
SIZE_RANKS = {}  # run folder -> bnlab.cost.size_rank (the priority is asked for again and again)


def spec_of(wildcards):
    return RunSpec.from_strings({PARAM_FOR_KEY[k]: v for k, v in wildcards.items()})


def run_priority(spec):
    key = spec.relative_dir()
    stage = 2 if key in PICK_SOURCE_RUNS else 1 if spec.source_studies else 0
    if key not in SIZE_RANKS:
        SIZE_RANKS[key] = size_rank(spec, PLAN.config["data"])
    return 1000 * stage + SIZE_RANKS[key]


def train_priority(wildcards):
    return run_priority(spec_of(wildcards))


def pick_inputs(spec):
    """The tables a run's references are read from when it starts: a range test's picks (lr / lr_min
    pick-<study>, rule lr_picks) and a search stage's candidates (best-/draw<i>-<study>, rule search_picks)."""
    tables = [f"{R}/picks/{study}/{PICKS_TABLE}" for study in spec.picks.values()]
    tables += [f"{R}/picks/{search_ref(v)[2]}/{SEARCH_TABLE}" for v in spec.searches.values()]
    return list(dict.fromkeys(tables))


def train_resources(wildcards):
    """mem_mb, runtime_min and gpus_per_run of one training job (its studies' `resources`)."""
    return PLAN.run_resources(RunSpec.from_strings({PARAM_FOR_KEY[k]: v for k, v in wildcards.items()}))


def run_dir(run):
    return f"{R}/runs/{run.relative_dir()}"


# The fused groups of this invocation (execution.fuse; rules/train.smk turns each into a job): cut from
# every run of the config, so a group keeps its name and members on every read of the workflow (a cluster
# node reads it again after other groups have finished), each training only its members not yet finished.
FUSED_GROUPS = [
    group
    for group in (
        planned.left_to_train(lambda r: os.path.exists(f"{run_dir(r)}/metrics.json"))
        for planned in fused_groups(PLAN.runs, *fusion_policy(EXEC))
    )
    if group is not None
]


def study_run_files(study_name, filename):
    return [f"{run_dir(r)}/{filename}" for r in PLAN.studies[study_name].runs]


def analysis_folder(study_name, analysis):
    return f"{R}/studies/{study_name}/{analysis}"


def analysis_inputs(study_name, analysis):
    """A (study, analysis) job's inputs, from the registry's declaration: every run's metrics.json and the
    run files it reads, the folders of the analyses it needs, and its code."""
    entry = get_analysis(analysis)
    inputs = {"code": analysis_code(analysis)}
    if entry.trains:
        for name in dict.fromkeys(("metrics.json",) + entry.reads):
            inputs[name.split(".")[0]] = study_run_files(study_name, name)
    inputs["needs"] = [analysis_folder(study_name, need) for need in needs_of(analysis, PLAN.studies[study_name])]
    if entry.extra_inputs:
        inputs["extra"] = [f"{R}/{path}" for path in entry.extra_inputs(PLAN, PLAN.studies[study_name])]
    return inputs


def study_outputs(study_name):
    """Every analysis folder the report needs from one study, in report order."""
    return [analysis_folder(study_name, a) for a in PLAN.studies[study_name].analyses]


# The warm server (bnlab/warm.py): on a local run, one process imports torch, matplotlib and
# bnlab once and every train and analysis job runs in a fork of it. Not for jobs that
# Snakemake runs elsewhere (a cluster) or in another environment (--use-conda): those run in
# their own process, which is also what a job does whenever no server answers.
WARM_SERVER = {}  # its process, while the workflow runs


# The step-time job (rules/train.smk) asks for more cores than any machine has: Snakemake gives a local job
# at most the cores it was given, so it gets them all and no job runs beside it. Where jobs run elsewhere
# (a cluster) an allocation is the job's own, and it asks what a training job asks.
TIMING_THREADS = 1024 if runs_jobs_in_this_process_tree(workflow) else EXEC["threads_per_run"]


def warm_server_wanted():
    return EXEC["warm_server"] and runs_jobs_in_this_process_tree(workflow)
