"""The committed JSON Schemas match the models, and the examples are valid against them."""
from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from helpers import EXAMPLES, ROOT


@pytest.mark.parametrize("name", ["experiment", "local-plan"])
def test_committed_schema_is_current(name):
    from areal_compiler.schema import schema_text

    committed = (ROOT / "schemas" / f"{name}.schema.json").read_text(encoding="utf-8")
    assert committed == schema_text(name), f"schemas/{name}.schema.json is stale: run `areal schema {name} > " \
                                           f"schemas/{name}.schema.json`"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_matches_schema_and_names_it(example):
    text = example.read_text(encoding="utf-8")
    assert text.startswith("# yaml-language-server: $schema=../schemas/experiment.schema.json\n")
    schema = json.loads((ROOT / "schemas" / "experiment.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(yaml.safe_load(text), schema)


def test_schema_rejects_unknown_keys():
    schema = json.loads((ROOT / "schemas" / "experiment.schema.json").read_text(encoding="utf-8"))
    data = yaml.safe_load(EXAMPLES[0].read_text(encoding="utf-8"))
    data["compute"]["num_accelerator"] = 8
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)
