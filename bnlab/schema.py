"""The config schema (config/schema.yaml): loaded once, its defaults filled in, a value checked against it
with a message that names the field and what is allowed.

Plan layer, below bnlab.config: the modules that check a feature's config entries (bnlab.cells,
bnlab.claims) check run parameters here without importing the whole config expansion.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

import jsonschema
import yaml

from bnlab.errors import ConfigError, path_text
from bnlab.params import PARAM_NAMES, RUN_PARAMETERS, SCHEMA_PATH

# Run parameters that are numbers (declared with type number, or a number among their forms); YAML reads
# "1e-3" as text, so these are converted before validation ("1e-3" and 0.001 are then the same run).
NUMBER_PARAMS: tuple[str, ...] = tuple(
    name for name, spec in RUN_PARAMETERS.items()
    if spec.get("type") == "number" or any(form.get("type") == "number" for form in spec.get("oneOf", ())))


@lru_cache(maxsize=1)
def load_schema() -> dict:
    with open(SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


# ---------------------------------------------------------------- defaults
def _resolve_ref(schema: dict, root: dict) -> dict:
    while "$ref" in schema:
        name = schema["$ref"].split("/")[-1]
        schema = root["$defs"][name]
    return schema


def fill_defaults(instance: Any, schema: dict, root: dict) -> None:
    """Insert schema defaults into dicts, recursively (in place)."""
    schema = _resolve_ref(schema, root)
    if isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for item in instance:
            fill_defaults(item, schema["items"], root)
        return
    if not isinstance(instance, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        sub_resolved = _resolve_ref(sub, root)
        if key not in instance:
            if "default" in sub:
                instance[key] = copy.deepcopy(sub["default"])
            elif "default" in sub_resolved:
                instance[key] = copy.deepcopy(sub_resolved["default"])
        if key in instance:
            fill_defaults(instance[key], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in instance.items():
            if key not in schema.get("properties", {}):
                fill_defaults(value, extra, root)


def _form(branch: dict) -> str:
    """One alternative of a oneOf, in words."""
    branch = _resolve_ref(branch, load_schema())
    if "const" in branch:
        return repr(branch["const"])
    if branch.get("type") in ("number", "integer"):
        return "a number" + (" > 0" if branch.get("exclusiveMinimum") == 0 else "")
    if branch.get("type") == "array":
        return "a list"
    return branch.get("description", str(branch.get("type", "another form")))


def _explain(error: jsonschema.ValidationError, prefix: list) -> str:
    """One line: where, what is wrong, what is allowed."""
    best = jsonschema.exceptions.best_match([error]) if error.context else error
    where = path_text(prefix + list(best.absolute_path))
    schema = best.schema if isinstance(best.schema, dict) else {}
    msg = f"config error at '{where}': {best.message}"
    if error.validator == "oneOf" and isinstance(error.instance, str) and best.validator in ("pattern", "const"):
        # A word where a number or a reference was expected: name every accepted form.
        forms = " or ".join(_form(b) for b in error.validator_value)
        return f"config error at '{where}': {error.instance!r} is not of type 'number'; allowed: {forms}"
    if best.validator == "additionalProperties" and isinstance(schema.get("properties"), dict):
        msg += f"; allowed keys: {', '.join(sorted(schema['properties']))}"
    if "enum" in schema:
        msg += f"; allowed: {', '.join(map(str, schema['enum']))}"
    if "description" in schema:
        msg += f" ({schema['description']})"
    return msg


def check(instance: Any, schema: dict, prefix: list) -> None:
    root = load_schema()
    full = {**schema, "$defs": root["$defs"]}
    validator = jsonschema.Draft202012Validator(full)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError(_explain(errors[0], prefix))


def coerce_numbers(params: dict, keys=NUMBER_PARAMS) -> dict:
    """The numbers among `keys` as numbers: YAML reads 1e-3 (no dot) as text."""
    out = dict(params)
    for key in keys:
        value = out.get(key)
        if isinstance(value, str) and value != "default":
            try:
                out[key] = float(value)
            except ValueError:
                pass  # left for the schema to reject with a message
    return out


def check_param(key: str, value: Any, where: list) -> None:
    """One run parameter as a study sets it (fixed, grid, a cell selector), checked against its declaration."""
    root = load_schema()
    props = root["$defs"]["run"]["properties"]
    if key == "seed":
        raise ConfigError(f"config error at '{path_text(where)}': set seeds with the study's 'seeds' list")
    if key not in props:
        raise ConfigError(
            f"config error at '{path_text(where)}': unknown run parameter '{key}'; "
            f"allowed: {', '.join(p for p in PARAM_NAMES if p != 'seed')}"
        )
    check(coerce_numbers({key: value})[key], props[key], where)
