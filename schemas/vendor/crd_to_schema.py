"""Converts the vendored JobSet CRD into a strict JSON Schema (printed on stdout) for offline validation.

Run by hand after updating the CRD; tests/kubernetes/test_validation.py checks the committed output is current."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

CRD = Path(__file__).resolve().parent / "jobset-v0.12.0-crd.yaml"
DROPPED = ("description", "x-kubernetes-list-map-keys", "x-kubernetes-list-type", "x-kubernetes-map-type",
           "x-kubernetes-validations")


def strict(node):
    """The OpenAPI v3 node as JSON Schema: closed objects, int-or-string as anyOf, no descriptions or CEL."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: strict(value) for key, value in node.items() if key not in DROPPED}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and not preserve and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def schema(crd: dict) -> dict:
    version = next(v for v in crd["spec"]["versions"] if v.get("served"))
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    out = strict(version["schema"]["openAPIV3Schema"])
    out["properties"]["apiVersion"] = {"const": f"{group}/{version['name']}"}
    out["properties"]["kind"] = {"const": kind}
    out["required"] = sorted(set(out.get("required", [])) | {"apiVersion", "kind", "metadata", "spec"})
    return {"$schema": "http://json-schema.org/draft-07/schema#",
            "title": f"{kind} {group}/{version['name']} (strict, from {CRD.name})", **out}


def main() -> int:
    sys.stdout.write(json.dumps(schema(yaml.safe_load(CRD.read_text(encoding="utf-8"))), indent=1,
                                sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
