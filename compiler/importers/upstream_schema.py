"""Upstream AReaL's config schema, per version: the committed field tables (schemas/areal/areal-<version>.json).

Used by importers/schema_check.py (validation, defaults for interpolation) and by `areal --version`; the tables
are derived by schemas/areal/derive_fields.py and never edited by hand."""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

VERSIONS = ("2.0.0", "1.0.4")  # newest first: the importer validates against VERSIONS[0]
PYPI_VERSION = "1.0.4"  # the only upstream release on PyPI: keys it lacks get a warning (W511)
SCALARS = ("int", "float", "bool", "str")


class Tables:
    """One upstream version's dataclasses (plus, for a --driver, the training script's own)."""

    def __init__(self, version: str, classes: dict[str, dict], source: str = ""):
        self.version, self.classes, self.source = version, classes, source
        self._defaults: dict[str, dict] = {}  # per class: a script's classes may nest (even loop) many times
        self._fields: dict[str, dict] = {}

    @property
    def label(self) -> str:
        return f"upstream AReaL {self.version}"

    def with_classes(self, extra: dict[str, dict]) -> Tables:
        return Tables(self.version, {**self.classes, **extra}, self.source)

    def fields(self, name: str) -> dict[str, dict]:
        """Every field of class `name`, inherited ones first (a dataclass's order), overrides in place."""
        if name not in self._fields:
            self._fields[name] = _fields(self, name, 0)
        return self._fields[name]

    def checks(self, name: str) -> list[dict]:
        seen, out = set(), []
        for cls in self.lineage(name):
            for check in self.classes[cls].get("checks", []):
                key = json.dumps(check, sort_keys=True)
                if key not in seen:
                    seen.add(key)
                    out.append(check)
        return out

    def lineage(self, name: str, _chain: tuple = ()) -> list[str]:
        """The class and its known bases, most basic first (a loop of bases, which Python refuses, is cut)."""
        out = []
        for base in self.classes.get(name, {}).get("bases", []):
            if base in self.classes and base not in out and base not in _chain and base != name:
                out += [b for b in self.lineage(base, _chain + (name,)) if b not in out]
        return out + ([name] if name in self.classes else [])

    def is_a(self, name: str, base: str) -> bool:
        return base in self.lineage(name)

    def defaults(self, name: str, _chain: tuple = ()) -> dict:
        """The value an untouched instance of class `name` has: what `${...}` sees for a key the file omits."""
        if name not in self._defaults:
            self._defaults[name] = {key: value for key, spec in self.fields(name).items()
                                    if (value := self.materialize(spec["default"], _chain + (name,))) is not _ABSENT}
        return self._defaults[name]

    def materialize(self, default, _chain: tuple = ()):
        if isinstance(default, dict) and "$new" in default:
            if default["$new"] not in self.classes or default["$new"] in _chain:
                return _ABSENT  # unknown, or a class whose default holds itself (it could never be built)
            out = dict(self.defaults(default["$new"], _chain))
            out.update({k: v for k, d in default.get("args", {}).items()
                        if (v := self.materialize(d, _chain)) is not _ABSENT})
            return out
        if isinstance(default, dict) and ("$missing" in default or "$unknown" in default):
            return _ABSENT
        if isinstance(default, list):
            return [v for d in default if (v := self.materialize(d, _chain)) is not _ABSENT]
        return default


_ABSENT = object()


def _fields(tables: Tables, name: str, depth: int) -> dict[str, dict]:
    out: dict[str, dict] = {}
    spec = tables.classes.get(name)
    if spec is None or depth > 20:
        return out
    for base in spec.get("bases", []):
        out.update(tables.fields(base) if base in tables._fields else _fields(tables, base, depth + 1))
    out.update(spec["fields"])
    return out


@lru_cache(maxsize=None)
def load(version: str = VERSIONS[0]) -> Tables:
    from areal_compiler import schemas  # the package holding the committed tables (package data)

    data = json.loads((Path(schemas.__file__).parent / "areal" / f"areal-{version}.json").read_text())
    return Tables(data["areal_version"], data["classes"], data.get("source", ""))


def newest() -> Tables:
    return load(VERSIONS[0])


class Kind:
    """A field's annotation, as OmegaConf reads it: a class, a list of one, a mapping, scalars, or anything."""

    def __init__(self, annotation: str, tables: Tables):
        parts = [p.strip() for p in _split_union(annotation)]
        self.optional = "None" in parts or annotation.startswith("Optional[")
        parts = [p for p in parts if p != "None"]
        text = parts[0] if len(parts) == 1 else ""
        if text.startswith("Optional[") and text.endswith("]"):
            text = text[len("Optional["):-1]
        self.text = annotation
        self.cls = text if text in tables.classes else None
        match = re.fullmatch(r"(?:list|tuple|List|Tuple)\[\s*([A-Za-z_][\w.]*)\s*(?:,\s*\.\.\.)?\]", text)
        self.list_of = match.group(1) if match else ("Any" if text in ("list", "tuple") else None)
        self.mapping = text == "dict" or text.startswith(("dict[", "Dict["))
        scalars = [p for p in parts if p in SCALARS]
        self.scalars = scalars if len(scalars) == len(parts) else []  # `Any` and the like: anything goes


def _split_union(text: str) -> list[str]:
    """`A | B[C | D]` -> ["A", "B[C | D]"]: splits on top-level `|` only."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch == "["
        depth -= ch == "]"
        if ch == "|" and depth == 0:
            out.append(text[start:i])
            start = i + 1
    return out + [text[start:]]
