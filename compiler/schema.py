"""JSON Schemas generated from the models: the experiment format (and, with the plan, the local plan).

Called by `areal schema` and by the test that keeps schemas/*.json in step with the models."""
from __future__ import annotations

from areal_compiler.spec.models import Experiment

SCHEMA_ID = "https://github.com/areal-project/areal-compile/schemas/experiment.schema.json"


def experiment_schema() -> dict:
    schema = Experiment.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "AReaL experiment (areal compile)"
    return schema
