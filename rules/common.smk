# Shared set-up: validate the config, expand studies into runs, path helpers.
from snakemake.exceptions import WorkflowError

from bnlab.config import ConfigError, build_plan
from bnlab.data.catalog import INPUT_SHAPES
from bnlab.runfolder import OUTPUT_FILES
from bnlab.params import DIRECTORY_PARAMS, PARAM_NAMES, PATH_KEYS, PICK_PREFIX, is_pick, run_paramspaces

try:
    PLAN = build_plan(config)
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


# (model, input shape) of every network the training studies use: what the
# architecture-accounting study tabulates.
MODELS_USED = sorted({(r.model, INPUT_SHAPES[r.dataset]) for r in PLAN.runs})


def run_dir(run):
    return f"{R}/runs/{run.relative_dir()}"


def study_run_files(study_name, filename):
    return [f"{run_dir(r)}/{filename}" for r in PLAN.studies[study_name].runs]


def study_fixed_params(study_name):
    """Parameters the study does not vary (not columns of its runs.csv)."""
    study = PLAN.studies[study_name]
    first = study.runs[0].as_strings()
    return {p: v for p, v in first.items() if p not in study.axes and p != "seed"}


def study_outputs(study_name):
    """Every file the report needs from one study."""
    study = PLAN.studies[study_name]
    folder = f"{R}/studies/{study_name}"
    if study.kind != "train":
        return [f"{folder}/section.json"]
    files = [f"{folder}/{name}" for name in ("runs.csv", "summary.csv", "learning_curves.png")]
    if "bn_curves" in study.analyses:
        files += [f"{folder}/bn_curves_acc.png", f"{folder}/bn_curves_loss.png"]
    if "speedup" in study.analyses:
        files += [f"{folder}/speedup.csv", f"{folder}/speedup_per_seed.csv"]
    if "bn_params" in study.analyses:
        files += [f"{folder}/bn_layers.csv", f"{folder}/bn_violins.png"]
    if "lr_range" in study.analyses:
        files += [f"{folder}/lr_range.png", f"{folder}/lr_range.csv"]
    if "batch_growth" in study.analyses:
        files += [f"{folder}/batch_growth.png", f"{folder}/batch_growth.csv", f"{folder}/batch_growth_runs.csv"]
    if "landscape" in study.analyses:
        files += [f"{folder}/landscape_course.png", f"{folder}/landscape_probes.png", f"{folder}/landscape.csv"]
    return files
