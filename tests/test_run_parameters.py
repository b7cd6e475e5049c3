"""A run parameter is declared once, in config/schema.yaml's run section: name, folder key (x-key), type,
default and description; bnlab.params derives the folder keys from it and RunSpec must list the same names."""

from dataclasses import fields

import jsonschema
import pytest

from bnlab.params import PATH_KEYS, RUN_PARAMETERS, RunSpec, declared_run_parameters


def test_runspec_lists_the_declared_parameters_in_their_order():
    assert [f.name for f in fields(RunSpec)] == list(RUN_PARAMETERS)
    assert list(PATH_KEYS) == list(RUN_PARAMETERS)


@pytest.mark.parametrize("name", list(RUN_PARAMETERS))
def test_each_declaration_is_whole_and_its_default_is_allowed(name):
    spec = RUN_PARAMETERS[name]
    assert spec.get("description"), f"{name}: no description"
    assert "default" in spec, f"{name}: no default"
    schema = {k: v for k, v in spec.items() if not k.startswith("x-")}
    # a default written as a reference (#/$defs/...) resolves against the whole schema
    from bnlab.config import load_schema

    jsonschema.validate(spec["default"], {**schema, "$defs": load_schema()["$defs"]})


def test_folder_keys_are_unique_and_parse_back():
    keys = list(PATH_KEYS.values())
    assert len(set(keys)) == len(keys)
    # folder names are "key~value_key~value": a key never holds "_" or "~"
    assert all(key.isalnum() and key == key.lower() for key in keys), keys


def test_a_parameter_declared_without_a_runspec_field_is_found(tmp_path, monkeypatch):
    """The check above can fail: a schema with one more run parameter than RunSpec."""
    import yaml

    from bnlab import params

    schema = yaml.safe_load(params.SCHEMA_PATH.read_text())
    schema["$defs"]["run"]["properties"]["warmup"] = {"x-key": "warm", "type": "integer", "default": 0,
                                                     "description": "warm-up steps"}
    path = tmp_path / "schema.yaml"
    path.write_text(yaml.safe_dump(schema, sort_keys=False))
    monkeypatch.setattr(params, "SCHEMA_PATH", path)
    declared = declared_run_parameters()
    assert list(declared)[-1] == "warmup" and [f.name for f in fields(RunSpec)] != list(declared)
