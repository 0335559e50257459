"""JSON Schemas generated from the models: the experiment format and the local launch plan.

Called by `areal schema` and by the test that keeps schemas/*.json in step with the models."""
from __future__ import annotations

BASE_ID = "https://github.com/areal-project/areal-compile/schemas/"
SCHEMAS = ("experiment", "local-plan")


def schema(name: str) -> dict:
    if name == "experiment":
        from areal_compiler.spec.models import Experiment as model

        title = "AReaL experiment (areal compile)"
    else:
        from areal_compiler.targets.local_plan import LaunchPlan as model

        title = "Local launch plan (areal compile --target local)"
    out = model.model_json_schema()
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    out["$id"] = f"{BASE_ID}{name}.schema.json"
    out["title"] = title
    return out


def schema_text(name: str) -> str:
    import json

    return json.dumps(schema(name), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
