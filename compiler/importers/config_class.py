"""Which upstream config class loads an upstream config: the training script's (read from --driver) or, without
one, the class upstream's own scripts use for a config of this shape.

Called by importers/areal.py before interpolation (the class's defaults are what `${...}` sees for omitted keys)."""
from __future__ import annotations

import ast
import shlex
from dataclasses import dataclass
from pathlib import Path

from areal_compiler.importers.fields import read_classes
from areal_compiler.importers.upstream_schema import Tables, newest

MAX_SCRIPT_BYTES = 2_000_000
ROLLOUT_ONLY = "RolloutOnlyConfig"  # upstream's rollout-only scripts: BaseExperimentConfig + rollout and gconfig


@dataclass
class ConfigClass:
    tables: Tables
    name: str  # the top-level class
    strict_top: bool  # True when the script's class is known: top-level keys it lacks are errors
    described: str  # how the class was chosen, for messages
    problem: str | None = None  # why the driver's class could not be read (a warning)


def config_class(data: dict, driver: str | None, cwd: Path | None = None) -> ConfigClass:
    tables = newest()
    fallback = _by_shape(data, tables)
    if driver is None:
        return fallback
    found = _from_script(driver, cwd or Path.cwd(), tables)
    if isinstance(found, str):
        fallback.problem = found
        return fallback
    name, classes, script = found
    try:
        script = script.relative_to(cwd or Path.cwd())
    except ValueError:
        pass
    return ConfigClass(tables.with_classes(classes), name, True, f"{script} loads the config with {name}")


def _by_shape(data: dict, tables: Tables) -> ConfigClass:
    """Upstream's own scripts: PPOConfig/GRPOConfig for RL, SFTConfig, DPOConfig (actor and ref), RWConfig
    (is_critic), and a rollout-only class (a `rollout` and no `actor`) built on BaseExperimentConfig."""
    actor = data.get("actor")
    if "actor" not in data and isinstance(data.get("rollout"), dict):
        tables = tables.with_classes({ROLLOUT_ONLY: {"bases": ["BaseExperimentConfig"], "checks": [], "fields": {
            "gconfig": {"type": "GenerationHyperparameters", "default": {"$new": "GenerationHyperparameters"}},
            "rollout": {"type": "InferenceEngineConfig", "default": {"$new": "InferenceEngineConfig"}}}}})
        name = ROLLOUT_ONLY
    elif any(k in data for k in ("rollout", "gconfig", "critic", "teacher")):
        name = "PPOConfig"
    elif "ref" in data:
        name = "DPOConfig"
    elif isinstance(actor, dict) and actor.get("is_critic") is True:
        name = "RWConfig"
    else:
        name = "SFTConfig"
    return ConfigClass(tables, name, False, f"upstream's scripts load such a config with {name}; pass --driver to "
                                            "check it against your training script's class")


def _from_script(driver: str, cwd: Path, tables: Tables):
    """(class name, the script's own dataclasses, script path) or a sentence saying why it cannot be known."""
    try:
        argv = shlex.split(driver)
    except ValueError:
        return "the --driver command cannot be split into arguments"
    if len(argv) >= 3 and argv[1] == "-m":
        candidates = [cwd / (argv[2].replace(".", "/") + ".py"), cwd / argv[2].replace(".", "/") / "__main__.py"]
    elif len(argv) >= 2 and argv[1].endswith(".py"):
        candidates = [cwd / argv[1]]
    else:
        return "the --driver command names no Python script (python SCRIPT.py or python -m MODULE)"
    script = next((c for c in candidates if c.is_file()), None)
    if script is None:
        return f"the training script {candidates[0]} is not there to read (compile where the script is)"
    classes: dict[str, dict] = {}
    tree = _read(script, classes, cwd, 0)
    if tree is None:
        return f"{script} cannot be read as Python"
    name = _loaded_class(tree)
    if name is None:
        return f"{script} calls no load_expr_config(args, ConfigClass)"
    renamed = {n: f"{n} ({script.name})" for n in classes if n in tables.classes}
    classes = {renamed.get(n, n): _rename(spec, renamed) for n, spec in classes.items()}
    name = renamed.get(name, name)
    if name not in classes and name not in tables.classes:
        return f"{script} loads the config with `{name}`, a class neither it nor upstream defines"
    return name, classes, script


def _read(path: Path, classes: dict, cwd: Path, depth: int):
    """Parse `path`, add its dataclasses and those of the local modules it imports from (two levels deep)."""
    try:
        if path.stat().st_size > MAX_SCRIPT_BYTES:
            return None
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text, str(path))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return None
    if depth < 2:
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                module = _local_module(node, path, cwd)
                if module is not None:
                    _read(module, classes, cwd, depth + 1)
    for name, spec in read_classes(text, str(path)).items():
        classes.setdefault(name, spec)
    return tree


def _local_module(node: ast.ImportFrom, path: Path, cwd: Path) -> Path | None:
    """The file of a module the script imports from its own tree (upstream's `areal` package excepted: its classes
    are the committed tables')."""
    parts = (node.module or "").split(".") if node.module else []
    if not node.level and parts[:1] == ["areal"]:
        return None
    if node.level:
        base = path.parent
        for _ in range(node.level - 1):
            base = base.parent
        roots = [base]
    else:
        roots = [cwd, path.parent]
    for root in roots:
        candidate = root.joinpath(*parts).with_suffix(".py") if parts else None
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def _loaded_class(tree) -> str | None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == \
                "load_expr_config" and len(node.args) >= 2 and isinstance(node.args[1], ast.Name):
            return node.args[1].id
    return None


def _rename(spec: dict, renamed: dict) -> dict:
    """A script class that shares a name with one of upstream's is kept apart: references follow the script's."""
    if not renamed:
        return spec
    fields = {}
    for key, field in spec["fields"].items():
        annotation = " | ".join(renamed.get(p.strip(), p.strip()) for p in field["type"].split("|"))
        default = field["default"]
        if isinstance(default, dict) and default.get("$new") in renamed:
            default = {**default, "$new": renamed[default["$new"]]}
        fields[key] = {**field, "type": annotation, "default": default}
    return {**spec, "bases": [renamed.get(b, b) for b in spec["bases"]], "fields": fields}
