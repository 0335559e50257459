"""The validated experiment as the commands read it: pydantic-core checks the data against core_schema.py (pydantic's
own schema of models.py, derived by derive.py) and builds read-only records, one class per model, with the models'
fields as attributes (exp.compute.accelerator, exp.roles["actor"].scheduling_spec.cpu).

Called by check.py; read by the rules, the resolver and the targets. The errors, values and defaults are pydantic's
own (tests compare both on every example and on broken ones); what it saves is importing pydantic and building the
models' validators in every one-shot command (about a third of a cold compile)."""
from __future__ import annotations

import functools

from pydantic_core import SchemaSerializer, SchemaValidator, ValidationError

from areal_compiler.spec.core_schema import SCHEMA

__all__ = ["Experiment", "Record", "Role", "ValidationError", "allowed_keys", "validate"]
FACTORIES = {"dict": dict, "list": list}


class Record:
    """One validated model: read-only, its fields as attributes; equal to a record of the same model with equal
    fields. The slots are the ones pydantic-core fills when it builds an instance."""

    __slots__ = ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.__dict__ == self.__dict__

    def __hash__(self) -> int:
        # Equal records have the same fields; hashable, so pydantic-core hands out a default record as it is
        # instead of deep-copying it for every experiment (records are never changed).
        return hash((type(self), tuple(self.__dict__)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.__dict__.items())})"

    def dump(self, *, exclude_none: bool = False, exclude_defaults: bool = False) -> dict:
        """The fields as JSON data, exactly as pydantic's model_dump(mode="json", ...) gives them."""
        return _serializer(type(self).__name__).to_python(self, mode="json", exclude_none=exclude_none,
                                                           exclude_defaults=exclude_defaults)


DEFINITIONS = {d["ref"]: d for d in SCHEMA["definitions"]}
CLASSES = {name: type(name, (Record,), {"__slots__": (), "__module__": __name__}) for name in DEFINITIONS}
Experiment, Role = CLASSES["Experiment"], CLASSES["Role"]  # the records the other modules name


def validate(data):
    """The experiment record of DATA (a mapping from YAML); raises pydantic-core's ValidationError, whose errors()
    are pydantic's."""
    return VALIDATOR.validate_python(data)


def allowed_keys(loc: tuple) -> list[str]:
    """The keys the model at LOC accepts (dict keys such as role names are stepped over); [] where none is."""
    node = SCHEMA["schema"]
    for part in loc:
        if node["type"] == "definition-ref":
            field = DEFINITIONS[node["schema_ref"]]["schema"]["fields"].get(str(part))
            if field is None:
                return []
            node = _unwrap(field["schema"])
        elif node["type"] == "dict":  # PART is a key of the mapping, e.g. a role name
            node = _unwrap(node["values_schema"])
        else:
            return []
    return list(DEFINITIONS[node["schema_ref"]]["schema"]["fields"]) if node["type"] == "definition-ref" else []


def _unwrap(node: dict) -> dict:
    while node["type"] in ("default", "nullable"):
        node = node["schema"]
    return node


def _schema_of(ref: str) -> dict:
    """A definitions schema rooted at the model REF."""
    return {"type": "definitions", "schema": {"type": "definition-ref", "schema_ref": ref}, "definitions": RESOLVED}


def _resolve(node: dict) -> dict:
    """NODE with the classes, default factories and default records that core_schema.py names."""
    out = {}
    for key, value in node.items():
        if key == "cls":
            value = CLASSES[value]
        elif key == "default_factory":
            value = FACTORIES[value]
        elif key == "default":
            value = _default(node["schema"], value)
        elif isinstance(value, dict):
            value = _resolve(value) if key != "fields" else {k: _resolve(v) for k, v in value.items()}
        out[key] = value
    return out


def _default(node: dict, data):
    """A default as the validator would have built it: records for models (core_schema.py states their data)."""
    node = _unwrap(node) if data is not None else node
    if node["type"] == "definition-ref":
        fields = DEFINITIONS[node["schema_ref"]]["schema"]["fields"]
        record = object.__new__(CLASSES[node["schema_ref"]])
        for name, value in (("__dict__", {k: _default(fields[k]["schema"], v) for k, v in data.items()}),
                            ("__pydantic_fields_set__", set()), ("__pydantic_extra__", None),
                            ("__pydantic_private__", None)):
            object.__setattr__(record, name, value)
        return record
    if node["type"] == "dict" and data:
        return {k: _default(node["values_schema"], v) for k, v in data.items()}
    return data


@functools.cache
def _serializer(name: str) -> SchemaSerializer:
    return SchemaSerializer(_schema_of(name))


RESOLVED = [_resolve(d) for d in SCHEMA["definitions"]]
VALIDATOR = SchemaValidator(_schema_of(SCHEMA["schema"]["schema_ref"]))
