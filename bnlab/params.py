"""Run parameters: their order, canonical string form and short path keys.

A run is identified by its full resolved parameters. Every place that turns
parameters into a folder name, or a folder name back into parameters, goes
through this module, so the two directions can never disagree.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

# Every run parameter is declared once, in config/schema.yaml's run section ($defs.run): its name, the
# short key of run-folder names (x-key), its type and allowed values, its default and its description.
# RunSpec below lists the same names in the same order with their Python types (tests/test_params.py).
# The order is the order of the folder name: dataset and model become directories, then one segment
# "key~value_key~value..." for the network (ARCH_PARAMS), one for the optimizer and its lr policy
# (OPTIM_PARAMS) and one for the data it sees (BATCH_PARAMS); three segments keep each name well under
# the 255-character limit of a file name.
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "config" / "schema.yaml"


def declared_run_parameters() -> dict[str, dict]:
    """The run section of config/schema.yaml: parameter name -> its declaration, in folder-name order."""
    with open(SCHEMA_PATH) as fh:
        return yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["$defs"]["run"]["properties"]


RUN_PARAMETERS: dict[str, dict] = declared_run_parameters()
# Parameter name -> short key used in run-folder names.
PATH_KEYS: dict[str, str] = {name: spec["x-key"] for name, spec in RUN_PARAMETERS.items()}
PARAM_NAMES: tuple[str, ...] = tuple(PATH_KEYS)
DIRECTORY_PARAMS: tuple[str, ...] = ("dataset", "model")
ARCH_PARAMS: tuple[str, ...] = PARAM_NAMES[2 : PARAM_NAMES.index("optimizer")]
OPTIM_PARAMS: tuple[str, ...] = PARAM_NAMES[PARAM_NAMES.index("optimizer") : PARAM_NAMES.index("batch_size")]
BATCH_PARAMS: tuple[str, ...] = PARAM_NAMES[PARAM_NAMES.index("batch_size") :]
SEGMENTS: tuple[tuple[str, ...], ...] = (ARCH_PARAMS, OPTIM_PARAMS, BATCH_PARAMS)
PARAM_FOR_KEY: dict[str, str] = {v: k for k, v in PATH_KEYS.items()}

NOT_APPLICABLE = "na"  # value of a parameter that does not affect this run


@dataclass(frozen=True)
class Applies:
    """Where a run parameter affects the run, as its declaration's x-applies says (config/schema.yaml)."""

    param: str  # the run parameter it depends on
    values: tuple[Any, ...] | None  # the values of `param` where it applies; None: where `param` is nonzero
    defaults: dict[Any, Any]  # what "default" stands for under each value of `param` (empty: no such value)
    required: bool  # "default" is refused where it applies
    refuse_elsewhere: bool  # a value set where it does not apply is an error (otherwise it becomes "na")

    @classmethod
    def from_declaration(cls, name: str, declared: dict) -> "Applies":
        unknown = set(declared) - {"param", "in", "nonzero", "required", "elsewhere"}
        if unknown or ("in" in declared) == bool(declared.get("nonzero")) or \
                declared.get("elsewhere", "na") not in ("na", "refuse"):
            raise ValueError(f"{SCHEMA_PATH}: run parameter {name}: x-applies needs param and either `in` "
                             f"or `nonzero: true` (elsewhere: na or refuse), not {declared}")
        values = declared.get("in")
        return cls(param=declared["param"], values=None if values is None else tuple(values),
                   defaults=dict(values) if isinstance(values, dict) else {},
                   required=bool(declared.get("required")), refuse_elsewhere=declared.get("elsewhere") == "refuse")

    def holds(self, params: dict) -> bool:
        """Whether the parameter applies to a run with these (uncanonical) parameters."""
        value = params[self.param]
        return value != 0 if self.values is None else value in self.values

    def where_text(self) -> str:
        """Where it applies, in words: 'where model is mlp, cnn, cnn2 or resnet'."""
        if self.values is None:
            return f"where {self.param} is not 0"
        names = [str(v) for v in self.values]
        return f"where {self.param} is " + (", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0])


# Parameter name -> where it applies, for the parameters that do not apply to every run.
APPLIES: dict[str, Applies] = {name: Applies.from_declaration(name, spec["x-applies"])
                               for name, spec in RUN_PARAMETERS.items() if "x-applies" in spec}
# lr / lr_min written as "pick-<study>": the value the LR range test of that
# study picks, read when the run starts (the folder name keeps the reference).
PICK_PREFIX = "pick-"


def is_pick(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PICK_PREFIX)


# A searched parameter (SEARCHABLE_PARAMS) may be written as a reference to an earlier stage of a
# search (seed 001 section 4), resolved when the run starts from that study's runs (bnlab/search.py):
#   best-<study>      the value whose runs in <study> reached the highest final validation accuracy;
#   draw<i>-<study>   the i-th of seeded uniform draws between the grid neighbours of that best value.
SEARCHABLE_PARAMS: tuple[str, ...] = ("l2",)
SEARCH_REF = re.compile(r"^(?:best|draw(?P<index>[1-9][0-9]*))-(?P<study>[a-z][a-z0-9_]*)$")


def search_ref(value: Any) -> tuple[str, int, str] | None:
    """("best", 0, study) or ("draw", i, study) for a search reference, None for anything else."""
    match = SEARCH_REF.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    index = match.group("index")
    return ("draw", int(index), match.group("study")) if index else ("best", 0, match.group("study"))


def is_reference(value: Any) -> bool:
    """A value resolved when the run starts: a range-test pick or a search reference."""
    return is_pick(value) or search_ref(value) is not None


def format_number(x: float | int | str) -> str:
    """Canonical text of a number: '1e-3' and 0.001 both give '0.001'.

    Shortest round-trip repr, with exponents written without padding
    ('1e-05' -> '1e-5'), so learning rates read naturally in folder names.
    """
    f = float(x)
    if f.is_integer() and abs(f) < 1e15:
        return str(int(f))
    text = repr(f)
    if "e" in text:
        mantissa, exp = text.split("e")
        text = f"{mantissa}e{int(exp)}"
    return text


def value_text(value: Any) -> str:
    """Canonical text of a run parameter's value, as in folder names: true/false, numbers by format_number,
    anything else as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return format_number(value)
    return str(value)


def format_widths(widths: Any) -> str:
    """Widths list [1024, 512] -> '1024x512'; 'default' stays 'default'."""
    if widths is None or widths == "default":
        return "default"
    if isinstance(widths, str):
        return widths
    return "x".join(str(int(w)) for w in widths)


def parse_widths(text: str) -> list[int] | None:
    """Inverse of format_widths: 'default' -> None (the model's own widths)."""
    if text in ("default", NOT_APPLICABLE):
        return None
    return [int(w) for w in text.split("x")]


@dataclass(frozen=True)
class RunSpec:
    """The resolved parameters of one training run (typed)."""

    dataset: str
    model: str
    widths: str
    bn: str
    bn_impl: str
    activation: str
    init: str
    init_scale: str  # a number as text, or "na" where the init scheme has no scale
    dropout_in: float
    dropout_hidden: float
    optimizer: str
    # the constant rate, the top of a cyclical one, or the end of a range test;
    # "pick-<study>" for the lr_max that study's range test picks
    lr: float | str
    lr_schedule: str
    lr_min: str  # bottom of a cyclical rate / start of a range test (or "pick-<study>"), "na" otherwise
    lr_period: str  # epochs: CLR half cycle or step-decay interval, "na" otherwise
    lr_gamma: str  # exp_range decay per iteration or step-decay factor, "na" otherwise
    momentum: str  # a number as text, or "na" for optimizers without momentum
    weight_decay: float  # the optimizer's decay: every parameter, biases and BN's gamma/beta included
    # (or best-<study> / draw<i>-<study>, a stage of a search: SEARCH_REF)
    l2: float | str  # lambda of the cost J = loss + lambda * sum ||W||^2 over weight matrices and conv kernels only
    label_smoothing: float  # the training loss: cross-entropy against targets smoothed by this much (0 = plain)
    batch_size: int  # the starting batch of a growing one
    batch_growth_every: int  # steps between batch doublings (0 = fixed batch)
    batch_growth_max: str  # largest batch of the growth, "na" without growth
    batch_growth_via: str  # "batch": the batch doubles; "lr": lr halves at the same samples instead
    batch_mem_mb: str  # memory cap of one forward/backward in MB ("na" = none): larger batches accumulate
    epochs: int
    train_subset: int
    evals_per_epoch: int
    # images of the stratified validation (and test) subset that curve points use; 0 = the whole split.
    # The whole validation and test sets are evaluated once, at the end.
    eval_size: int
    eval_test: str  # "final": test set evaluated at the end only; "every": at every evaluation
    normalize: bool
    probe_every: int  # Santurkar probes every k-th step (0 = none)
    probe_etas: str  # number of step-size multipliers in [0.5, 4], or "na" without probes
    ics_every: int  # Santurkar et al.'s internal covariate shift per layer every k-th step (0 = never)
    coadapt: bool  # co-adaptation proxy (mean |corr| of hidden units) at the end of training
    seed: int

    # -- conversions -----------------------------------------------------
    def as_strings(self) -> dict[str, str]:
        """Canonical text of every parameter (what goes into folder names)."""
        # fields, not asdict: asdict deep-copies every value, and planning calls this ~15,000 times
        return {f.name: value_text(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_strings(cls, values: dict[str, Any]) -> "RunSpec":
        """Build from canonical text (folder names, Paramspace wildcards)."""
        kinds = {f.name: f.type for f in fields(cls)}
        missing = set(kinds) - set(values)
        if missing:
            raise ValueError(f"run parameters missing: {sorted(missing)}")
        typed: dict[str, Any] = {}
        for name, kind in kinds.items():
            raw = values[name]
            if kind == "bool":
                typed[name] = raw if isinstance(raw, bool) else str(raw).lower() == "true"
            elif kind == "int":
                typed[name] = int(float(raw))
            elif kind == "float":
                typed[name] = float(raw)
            elif kind == "float | str":  # a number, or a reference such as "pick-<study>"
                typed[name] = raw if is_reference(raw) else float(raw)
            else:
                typed[name] = str(raw)
        return cls(**typed)

    @property
    def init_scale_value(self) -> float | None:
        return None if self.init_scale == NOT_APPLICABLE else float(self.init_scale)

    @property
    def momentum_value(self) -> float:
        return 0.0 if self.momentum == NOT_APPLICABLE else float(self.momentum)

    @property
    def probe_multipliers(self) -> list[float]:
        """Step-size multipliers of the probes: geometric in [0.5, 4] (0.5, 1, 2, 4 for four)."""
        if self.probe_every <= 0:
            return []
        n = int(self.probe_etas)
        # 2**(3i/(n-1)) is exact at the powers of two (0.5, 1, 2, 4 for n = 4)
        return [0.5 * 2.0 ** (3 * i / (n - 1)) for i in range(n)]

    @property
    def grows(self) -> bool:
        return self.batch_growth_every > 0

    @property
    def mem_cap_mb(self) -> float | None:
        return None if self.batch_mem_mb == NOT_APPLICABLE else float(self.batch_mem_mb)

    @property
    def picks(self) -> dict[str, str]:
        """{'lr': study, 'lr_min': study} for the rates taken from a range test."""
        return {name: str(value)[len(PICK_PREFIX):] for name, value in (("lr", self.lr), ("lr_min", self.lr_min))
                if is_pick(value)}

    @property
    def searches(self) -> dict[str, str]:
        """{param: reference} for the values taken from an earlier stage of a search (best-/draw<i>-<study>)."""
        return {name: getattr(self, name) for name in SEARCHABLE_PARAMS if search_ref(getattr(self, name))}

    @property
    def source_studies(self) -> set[str]:
        """Every study whose runs this run's values are read from (range-test picks and search stages)."""
        return set(self.picks.values()) | {search_ref(v)[2] for v in self.searches.values()}

    def lr_batch_policy(self) -> str:
        """How lr and batch move during the run, in words (legends and tables of batch-growth studies)."""
        if self.grows and self.batch_growth_via == "batch":
            return (f"batch {self.batch_size}→{self.batch_growth_max} (x2 every {self.batch_growth_every} "
                    "updates), fixed lr")
        if self.grows:
            return f"lr decay matched to that growth, batch {self.batch_size}"
        if self.lr_schedule == "constant":
            return f"constant lr, batch {self.batch_size}"
        kind = "CLR" if self.lr_schedule in ("triangular", "triangular2", "exp_range") else "schedule"
        return f"{self.lr_schedule} {kind}, batch {self.batch_size}"

    @classmethod
    def from_relative_dir(cls, path: str) -> "RunSpec":
        """The run whose folder is `path` (relative_dir's output, optionally under results/runs/).

        The layout is fixed: every segment lists its keys in PATH_KEYS order, and a value
        never holds a "~", so the first "_<next key>~" ends a value.
        """
        layout = [(name,) for name in DIRECTORY_PARAMS] + list(SEGMENTS)
        parts = str(path).strip("/").split("/")[-len(layout):]
        if len(parts) != len(layout):
            raise ValueError(f"not a run folder: {path}")
        values: dict[str, str] = {}
        for part, names in zip(parts, layout):
            rest = part
            for i, name in enumerate(names):
                prefix = f"{PATH_KEYS[name]}~"
                if not rest.startswith(prefix):
                    raise ValueError(f"not a run folder: {path} (expected {prefix!r} at {rest[:30]!r})")
                rest = rest[len(prefix):]
                if i + 1 < len(names):
                    cut = rest.find(f"_{PATH_KEYS[names[i + 1]]}~")
                    if cut < 0:
                        raise ValueError(f"not a run folder: {path} (no {PATH_KEYS[names[i + 1]]!r} after {name})")
                    values[name], rest = rest[:cut], rest[cut + 1:]
                else:
                    values[name] = rest
        spec = cls.from_strings(values)
        if spec.relative_dir() != "/".join(parts):
            raise ValueError(f"not a canonical run folder: {path}")
        return spec

    @property
    def widths_list(self) -> list[int] | None:
        return parse_widths(self.widths)

    def relative_dir(self) -> str:
        """Folder of this run below results/runs (Paramspace's layout)."""
        s = self.as_strings()
        dirs = [f"{PATH_KEYS[p]}~{s[p]}" for p in DIRECTORY_PARAMS]
        segments = ["_".join(f"{PATH_KEYS[p]}~{s[p]}" for p in segment) for segment in SEGMENTS]
        return "/".join(dirs + segments)


# Parameters lr_batch_policy() puts into words.
POLICY_PARAMS = ("lr_schedule", "lr_min", "batch_size", "batch_growth_every", "batch_growth_max", "batch_growth_via")


def is_finite_number(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def run_paramspaces(runs: list[RunSpec]):
    """Snakemake Paramspaces of the run folder: network (with dataset and model directories),
    optimizer, and data/batch segments.

    A run's folder is "/".join(space.instance_patterns[i] for space in the
    three) == RunSpec.relative_dir().
    """
    import pandas as pd
    from snakemake.utils import Paramspace

    columns = [PATH_KEYS[p] for p in PARAM_NAMES]
    table = pd.DataFrame([{PATH_KEYS[k]: v for k, v in r.as_strings().items()} for r in runs], columns=columns)
    arch_keys = [PATH_KEYS[p] for p in DIRECTORY_PARAMS + ARCH_PARAMS]
    arch = Paramspace(table[arch_keys], filename_params=[PATH_KEYS[p] for p in ARCH_PARAMS])
    optim = Paramspace(table[[PATH_KEYS[p] for p in OPTIM_PARAMS]], filename_params="*")
    batch = Paramspace(table[[PATH_KEYS[p] for p in BATCH_PARAMS]], filename_params="*")
    return arch, optim, batch
