"""Checks an upstream config against upstream's own config class, as upstream's loader (OmegaConf) would.

Called by importers/areal.py after interpolation: unknown keys (did-you-mean), values of the wrong shape, missing
required fields and the checks upstream's dataclasses raise on, each located and naming upstream's version."""
from __future__ import annotations

from areal_compiler.diagnostics import did_you_mean
from areal_compiler.importers.builder import Builder
from areal_compiler.importers.config_class import ConfigClass
from areal_compiler.importers.interpolate import RunTime, dotted
from areal_compiler.importers.upstream_schema import PYPI_VERSION, Kind, load

MIGRATION = ("use the rejection_sampling block: behave_imp_weight_mode token_mask with cap X -> rejection_sampling: "
             "{level: token, action: mask, metric: ratio, upper: X}; token_truncate -> action: clamp; disabled -> "
             "rejection_sampling: null")
REMOVED = {  # keys upstream once had: what replaced them
    ("launcher",): "upstream has no `launcher` block any more: remove it (each engine's scheduling_spec sets its "
                   "cpu and mem)",
    ("behav_imp_weight_cap",): MIGRATION, ("behav_imp_weight_mode",): MIGRATION,
}
LEGACY_KEYS = ("behave_imp_weight_cap", "behave_imp_weight_mode")  # upstream raises its migration message for these
TRUE_WORDS = {"true", "false", "yes", "no", "on", "off", "y", "n", "1", "0"}


class Checker:
    def __init__(self, b: Builder, chosen: ConfigClass):
        self.b, self.tables, self.top = b, chosen.tables, chosen.name
        self.strict_top, self.described = chosen.strict_top, chosen.described
        self.old = load(PYPI_VERSION)
        self.newer: list[tuple] = []  # paths of keys upstream added after the wheel on PyPI
        self.unset_of: dict[str, list[str]] = {}  # class -> the required fields its default leaves unset

    def run(self) -> None:
        data = self.b.resolved.data if isinstance(self.b.resolved.data, dict) else {}
        before = len(self.b.diagnostics)
        self.mapping((), data, self.top)
        self._cross_field(data)
        seen, kept = set(), []
        for d in self.b.diagnostics[before:]:  # a value `${...}` copies is checked at each copy, reported once
            where = (d.code, d.file, d.span.line, d.span.col, d.hint) if d.span else (d.code, d.message)
            if where not in seen:
                seen.add(where)
                kept.append(d)
        self.b.diagnostics[before:] = kept
        if self.newer:
            shown = ", ".join(f"`{dotted(p)}`" for p in self.newer[:4]) + (
                f" and {len(self.newer) - 4} more" if len(self.newer) > 4 else "")
            self.b.note("W511", f"{shown}: new in {self.tables.label}; the areal {PYPI_VERSION} wheel on PyPI rejects "
                                f"{'it' if len(self.newer) == 1 else 'them'}", self.newer[0],
                        f"run the training script with upstream AReaL {self.tables.version} or later", key=True)

    def mapping(self, path: tuple, value: dict, cls: str) -> None:
        fields = self.tables.fields(cls)
        if cls == "TeacherConfig" and "backend" in value:
            self._flat_teacher(path)  # an engine's keys one level too high: one error, not one per key
            return
        for key, item in value.items():
            here = path + (key,)
            if not path and (key == "defaults" or key in self.b.resolved.failed):
                continue  # Hydra's defaults list (W501); a key whose `${...}` failed (said already)
            if key not in fields:
                self._unknown(path, key, cls, fields)
                continue
            self._note_newer(here, cls, key)
            self.value(here, item, Kind(fields[key]["type"], self.tables))
        for key, spec in fields.items():
            if key not in value:
                self._required(path + (key,), spec["default"], spec["type"])
        for check in self.tables.checks(cls):
            self._check(path, value, check, cls)

    def value(self, path: tuple, item, kind: Kind) -> None:
        if isinstance(item, RunTime) or item == "???":
            return
        if item is None:
            if not kind.optional and (kind.cls or kind.list_of or kind.mapping or kind.scalars):
                self._wrong(path, f"`{dotted(path)}` is null, but upstream's field is not optional ({kind.text})")
            return
        if kind.cls:
            if isinstance(item, dict):
                self.mapping(path, item, kind.cls)
            else:
                self._wrong(path, f"`{dotted(path)}` must be a mapping (upstream's {kind.cls}), got {_what(item)}")
        elif kind.list_of:
            if not isinstance(item, list):
                self._wrong(path, f"`{dotted(path)}` must be a list ({kind.text}), got {_what(item)}",
                            "write it as a list: `- ...` items" if isinstance(item, dict) else None)
            elif kind.list_of in self.tables.classes:
                for i, element in enumerate(item):
                    self.value(path + (i,), element, Kind(kind.list_of, self.tables))
        elif kind.mapping:
            if not isinstance(item, dict):
                self._wrong(path, f"`{dotted(path)}` must be a mapping ({kind.text}), got {_what(item)}")
        elif kind.scalars and not any(_converts(item, s) for s in kind.scalars):
            self._wrong(path, f"`{dotted(path)}` must be {' or '.join(kind.scalars)} ({kind.text}), got "
                              f"{_what(item)}")

    def _unknown(self, path: tuple, key, cls: str, fields: dict) -> None:
        here = path + (key,)
        where = f"`{dotted(path)}`" if path else "the top level"
        if key in LEGACY_KEYS and path and path[-1] in ("actor", "teacher"):
            self.b.error("E523", f"`{dotted(here)}` was removed: {self.tables.label} refuses to load a config that "
                                 "still has it", here, MIGRATION, key=True)
            return
        hint = REMOVED.get((key,)) or did_you_mean(str(key), fields) or \
            f"{cls}'s fields: {', '.join(list(fields)[:12])}{', ...' if len(fields) > 12 else ''}"
        if cls in self.old.classes and key in self.old.fields(cls):
            hint = f"upstream AReaL {self.old.version} had it, {self.tables.version} removed it; {hint}"
        if not path and not self.strict_top and (key,) not in REMOVED:
            self.b.note("W510", f"`{key}` is not a field of {self.tables.label}'s {cls}: upstream loads this config "
                                "only if the training script's own config class declares it", here,
                        "pass --driver 'python3 SCRIPT.py' to check it against the script's class", key=True)
            return
        self.b.error("E520", f"unknown key `{key}` in {where}: {self.tables.label}'s {cls} has no such field "
                             f"({self.described if not path else 'upstream refuses to load the config'})", here,
                     hint, key=True)

    def _flat_teacher(self, path: tuple) -> None:
        self.b.error("E520", f"unknown key `backend` in `{dotted(path)}`: {self.tables.label}'s TeacherConfig "
                             "has no such field (the teacher's engine settings are nested)", path + ("backend",),
                     "write teacher: {engine_type: train, train: {backend: ..., path: ..., ...}} (or engine_type: "
                     "rollout with a `rollout:` engine)", key=True)

    def _required(self, path: tuple, default, annotation: str) -> None:
        """A field the file omits: fine when it has a default; upstream refuses a required one (and a default
        block whose own required fields stay unset)."""
        if self.b.get("defaults") is not None:
            return  # Hydra defaults may fill it (W501)
        unset = self._unset(default)
        if not unset:
            return
        parent = dotted(path[:-1]) or "the top level"
        if unset == [""]:
            hint = f"add `{path[-1]}:` to {parent}"
            if path[-1] == "backend" and self.b.get("allocation_mode"):
                hint = (f"write the engine's part of allocation_mode `{self.b.get('allocation_mode')}` as "
                        f"{dotted(path)} (upstream's loader never reads allocation_mode)")
            self.b.error("E522", f"`{dotted(path)}` is missing: {self.tables.label} requires it ({annotation})",
                         path[:-1], hint, key=True)
        else:
            self.b.error("E522", f"`{dotted(path)}` is missing, and upstream's default leaves "
                                 f"{', '.join(unset)} unset: {self.tables.label} requires "
                                 f"{'it' if len(unset) == 1 else 'them'}", path[:-1],
                         f"add `{path[-1]}:` with {', '.join(unset)} to {parent}", key=True)

    def _unset(self, default, chain: tuple = ()) -> list[str]:
        """The required fields a default leaves unset ([""]: the field itself is required); at most a dozen named,
        each class looked into once per chain (a script's classes may nest, even loop)."""
        if isinstance(default, dict) and "$missing" in default:
            return [""]
        cls = default.get("$new") if isinstance(default, dict) else None
        if cls not in self.tables.classes or cls in chain or len(chain) > 8:
            return []
        given = default.get("args", {})
        if not given and cls in self.unset_of:
            return self.unset_of[cls]
        out = []
        for key, spec in self.tables.fields(cls).items():
            if key not in given and len(out) < 12:
                out += [f"{key}.{sub}" if sub else key for sub in self._unset(spec["default"], chain + (cls,))]
        if not given:
            self.unset_of[cls] = out[:12]
        return out[:12]

    def _check(self, path: tuple, value: dict, check: dict, cls: str) -> None:
        field = check["field"]
        if field not in value or isinstance(value[field], RunTime):
            return
        got, here = value[field], path + (field,)
        if "allowed" in check and got not in check["allowed"]:
            choices = ", ".join("null" if c is None else str(c) for c in check["allowed"])
            self.b.error("E523", f"`{dotted(here)}` must be one of {choices} ({self.tables.label}'s {cls} "
                                 f"refuses anything else), got {got!r}", here,
                         did_you_mean(str(got), [str(c) for c in check["allowed"] if c is not None]))
        elif "op" in check and isinstance(got, (int, float)) and not isinstance(got, bool) and \
                _compare(got, check["op"], check["value"]):
            self.b.error("E523", f"`{dotted(here)}` is {got}: {self.tables.label}'s {cls} refuses a value "
                                 f"{check['op']} {check['value']}", here)

    def _cross_field(self, data: dict) -> None:
        """The __post_init__ checks upstream raises on that involve more than one field."""
        teacher = data.get("teacher")
        if isinstance(teacher, dict) and "backend" not in teacher:
            kind = teacher.get("engine_type", "rollout")
            if kind in ("rollout", "train") and teacher.get(kind) is None:
                self.b.error("E522", f"teacher.{kind} must be provided when teacher.engine_type is '{kind}' "
                                     f"({self.tables.label}'s TeacherConfig)", ("teacher",),
                             f"add teacher.{kind}: {{backend: ..., ...}}")
        actor = data.get("actor") if isinstance(data.get("actor"), dict) else {}
        if self.tables.is_a(self.top, "RWConfig") and actor.get("is_critic") is not True:
            self.b.error("E523", "a reward-model config needs actor.is_critic: true (upstream's RWConfig)",
                         ("actor",), "set actor.is_critic: true")
        if self.tables.is_a(self.top, "DPOConfig") and actor.get("is_critic") is True:
            self.b.error("E523", "a DPO config trains a language model: actor.is_critic must be false (upstream's "
                                 "DPOConfig)", ("actor", "is_critic"), "remove actor.is_critic")
        for engine in ("actor", "critic", "ref", "rollout"):
            specs = data.get(engine, {}).get("scheduling_spec") if isinstance(data.get(engine), dict) else None
            if isinstance(specs, list) and len(specs) not in (1, 2):
                self.b.error("E523", f"{engine}.scheduling_spec has {len(specs)} entries; upstream takes 1 or 2 "
                                     "(worker, engine)", (engine, "scheduling_spec"))

    def _note_newer(self, path: tuple, cls: str, key) -> None:
        """Remember a key upstream's class declares now but the 1.0.4 wheel's did not (a script's own keys aside)."""
        owner = next((c for c in reversed(self.tables.lineage(cls)) if key in self.tables.classes[c]["fields"]), None)
        if owner in self.old.classes and key not in self.old.fields(owner):
            self.newer.append(path)

    def _wrong(self, path: tuple, message: str, hint: str | None = None) -> None:
        self.b.error("E521", f"{message}: {self.tables.label} refuses to load it", path, hint)


def _converts(item, scalar: str) -> bool:
    """Whether OmegaConf converts `item` to the field's scalar type (as upstream's loader does)."""
    if isinstance(item, (dict, list)):
        return False
    if scalar == "str":
        return True
    if scalar == "bool":
        return isinstance(item, bool) or isinstance(item, int) or (isinstance(item, str) and
                                                                   item.strip().lower() in TRUE_WORDS)
    if isinstance(item, bool):
        return False
    if scalar == "int":
        return isinstance(item, int) or (isinstance(item, str) and item.strip().lstrip("+-").isdigit())
    if isinstance(item, (int, float)):
        return True
    try:
        float(item)
    except (TypeError, ValueError):
        return False
    return True


def _compare(got, op: str, value) -> bool:
    return {"<": got < value, "<=": got <= value, ">": got > value, ">=": got >= value}[op]


def _what(item) -> str:
    if isinstance(item, dict):
        return "a mapping"
    if isinstance(item, list):
        return "a list"
    return repr(item)
