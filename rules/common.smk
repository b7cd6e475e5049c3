# Shared set-up: validate the config, expand studies into runs, path helpers.
import pandas as pd
from snakemake.exceptions import WorkflowError
from snakemake.utils import Paramspace

from bnlab.config import ConfigError, build_plan
from bnlab.params import DIRECTORY_PARAMS, PARAM_NAMES, PATH_KEYS

try:
    PLAN = build_plan(config)
except ConfigError as err:
    # No job is planned with a bad config; the message names the field.
    raise WorkflowError(str(err)) from None

R = PLAN.config["results"]
EXEC = PLAN.config["execution"]
REPORT_PDF = f"{R}/report.pdf"

# One Paramspace over every distinct run of every study: a run folder is keyed
# by its full resolved parameters, so studies asking for the same cell share it.
RUNS = Paramspace(
    pd.DataFrame([{PATH_KEYS[k]: v for k, v in r.as_strings().items()} for r in PLAN.runs]),
    filename_params=[PATH_KEYS[p] for p in PARAM_NAMES if p not in DIRECTORY_PARAMS],
)
RUN_DIR = f"{R}/runs/{RUNS.wildcard_pattern}"
RUN_OUTPUTS = ("config.json", "history.parquet", "steps.parquet", "bn_params.parquet", "metrics.json")


wildcard_constraints:
    # Values never contain '_' or '~' (bnlab.params keeps them so), which makes
    # the "key~value_key~value" run-folder names unambiguous.
    **{PATH_KEYS[p]: "[^/_~]+" for p in PARAM_NAMES if p not in DIRECTORY_PARAMS},
    dataset="[^/~]+",
    model="[^/~]+",
    study="|".join(PLAN.studies),


def run_dir(run):
    return f"{R}/runs/{run.relative_dir()}"


def study_run_files(study_name, filename):
    return [f"{run_dir(r)}/{filename}" for r in PLAN.studies[study_name].runs]


def analysis_outputs(study_name):
    """Files the report needs from a study, beyond runs/summary/learning curves."""
    study = PLAN.studies[study_name]
    folder = f"{R}/studies/{study_name}"
    files = []
    if "bn_curves" in study.analyses:
        files += [f"{folder}/bn_curves_acc.png", f"{folder}/bn_curves_loss.png"]
    if "speedup" in study.analyses:
        files += [f"{folder}/speedup.csv", f"{folder}/speedup_per_seed.csv"]
    if "bn_params" in study.analyses:
        files += [f"{folder}/bn_layers.csv", f"{folder}/bn_violins.png"]
    return files
