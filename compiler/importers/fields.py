"""Upstream AReaL's config dataclasses as data: read from Python source with `ast` (never imported or run).

Used by schemas/areal/derive_fields.py (the committed per-version tables) and by importers/schema_check.py, which
reads a training script's own config class (--driver) the same way."""
from __future__ import annotations

import ast

MISSING = {"$missing": True}  # a required field (OmegaConf's MISSING): the config must give it


def read_classes(text: str, filename: str = "<source>", constants: dict | None = None) -> dict[str, dict]:
    """Every @dataclass in `text`: {name: {"bases": [...], "fields": {field: {"type", "default"}}, "checks": [...]}}.
    `constants`: names the source imports (read_constants of their module). Raises SyntaxError on bad source."""
    tree = ast.parse(text, filename)
    constants = _constants(tree.body, dict(constants or {}))
    enums = {c.name: _enum_values(c) for c in tree.body if isinstance(c, ast.ClassDef) and _is_enum(c)}
    out = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(_decorator_name(d) == "dataclass" for d in node.decorator_list):
            out[node.name] = _read_class(node, constants, enums)
    return out


def read_constants(text: str, filename: str = "<source>") -> dict:
    """The module-level `NAME = literal` assignments of a source file (e.g. upstream's areal/utils/constants.py)."""
    tree = ast.parse(text, filename)
    enums = {c.name: _enum_values(c) for c in tree.body if isinstance(c, ast.ClassDef) and _is_enum(c)}
    return _constants(tree.body, {}, enums)


def _read_class(node: ast.ClassDef, constants: dict, enums: dict) -> dict:
    own = dict(constants)
    fields = {}
    for stmt in node.body:
        if isinstance(stmt, ast.Assign):  # class constants a default may name
            own.update(_constants([stmt], own))
        if not isinstance(stmt, ast.AnnAssign) or not isinstance(stmt.target, ast.Name):
            continue
        quoted = isinstance(stmt.annotation, ast.Constant) and isinstance(stmt.annotation.value, str)
        annotation = stmt.annotation.value if quoted else ast.unparse(stmt.annotation)  # "A": a forward reference
        if annotation.startswith(("ClassVar", "typing.ClassVar")):
            if stmt.value is not None:
                own[stmt.target.id] = _literal(stmt.value, own, enums)
            continue
        fields[stmt.target.id] = {"type": annotation, "default": _default(stmt.value, own, enums)}
    bases = [ast.unparse(b) for b in node.bases]
    return {"bases": bases, "fields": fields, "checks": _checks(node, own)}


def _default(value, constants: dict, enums: dict):
    if value is None:
        return MISSING  # a dataclass field without a default is required
    if isinstance(value, ast.Call) and _name(value.func) == "field":
        for keyword in value.keywords:
            if keyword.arg == "default":
                return _literal(keyword.value, constants, enums)
            if keyword.arg == "default_factory":
                return _factory(keyword.value, constants, enums)
        return MISSING
    return _literal(value, constants, enums)


def _factory(value, constants: dict, enums: dict):
    if isinstance(value, ast.Lambda):
        return _literal(value.body, constants, enums)
    name = _name(value)
    if name in ("dict",):
        return {}
    if name in ("list", "tuple", "set"):
        return []
    if name:
        return {"$new": name}
    return {"$unknown": ast.unparse(value)}


def _literal(node, constants: dict, enums: dict):
    """A default as JSON: literals, constants, enum members, `Cls(k=v)` as {"$new": Cls, "args": {...}}."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [_literal(e, constants, enums) for e in node.elts]
    if isinstance(node, ast.Dict) and all(isinstance(k, ast.Constant) for k in node.keys):
        return {k.value: _literal(v, constants, enums) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Name):
        if node.id == "MISSING":
            return MISSING
        if node.id in constants:
            return constants[node.id]
    if isinstance(node, ast.Attribute) and node.attr == "value" and isinstance(node.value, ast.Attribute):
        node = node.value  # Enum.MEMBER.value: the member's value, as below
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in enums:
        return enums[node.value.id].get(node.attr, {"$unknown": ast.unparse(node)})
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        return -node.operand.value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.func.id in ("int", "float") and len(node.args) == 1 and isinstance(node.args[0], ast.Constant):
            return int(node.args[0].value) if node.func.id == "int" else float(node.args[0].value)
        if node.func.id[:1].isupper() and not node.args:
            args = {k.arg: _literal(k.value, constants, enums) for k in node.keywords if k.arg}
            return {"$new": node.func.id, "args": args} if args else {"$new": node.func.id}
    if isinstance(node, ast.BinOp) and isinstance(node.left, ast.Constant) and isinstance(node.right, ast.Constant):
        try:
            return eval(compile(ast.Expression(node), "<default>", "eval"), {"__builtins__": {}})  # noqa: S307
        except (ArithmeticError, TypeError, ValueError):  # constants only: nothing to run but arithmetic
            pass
    return {"$unknown": ast.unparse(node)}


def _constants(body: list, known: dict, enums: dict | None = None) -> dict:
    """Simple `NAME = literal` assignments (module or class level) a default or a check may refer to."""
    out = {}
    for stmt in body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            value = _literal(_unwrap_set(stmt.value), {**known, **out}, enums or {})
            if not (isinstance(value, dict) and "$unknown" in value):
                out[stmt.targets[0].id] = value
    return {**known, **out}


def _is_frozenset(node) -> bool:
    return isinstance(node, ast.Call) and _name(node.func) in ("frozenset", "set", "tuple") and len(node.args) == 1


def _checks(node: ast.ClassDef, constants: dict) -> list[dict]:
    """The top-level single-field checks of __post_init__ upstream raises on: `self.F not in {...}` and `self.F < N` (or
    <=, >, >=): {"field", "allowed"} or {"field", "op", "value"} (the value the field must NOT compare so to)."""
    init = next((s for s in node.body if isinstance(s, ast.FunctionDef) and s.name == "__post_init__"), None)
    if init is None:
        return []
    local = _constants(init.body, constants)
    out = []
    for stmt in init.body:  # only unconditional checks: a nested one depends on other fields
        if not (isinstance(stmt, ast.If) and any(isinstance(s, ast.Raise) for s in stmt.body)):
            continue
        test = stmt.test
        if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and _self_field(test.left)):
            continue
        field, op, right = _self_field(test.left), test.ops[0], test.comparators[0]
        value = _literal(_unwrap_set(right), local, {})
        if isinstance(value, dict):
            continue
        if isinstance(op, ast.NotIn) and isinstance(value, list):
            out.append({"field": field, "allowed": value})
        elif type(op) in _OPS and isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append({"field": field, "op": _OPS[type(op)], "value": value})
    return out


_OPS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}


def _unwrap_set(node):
    return node.args[0] if _is_frozenset(node) else node


def _self_field(node) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return node.attr
    return None


def _is_enum(node: ast.ClassDef) -> bool:
    return any(_name(b) in ("Enum", "str") for b in node.bases) and any(_name(b) == "Enum" for b in node.bases)


def _enum_values(node: ast.ClassDef) -> dict:
    return {s.targets[0].id: s.value.value for s in node.body
            if isinstance(s, ast.Assign) and isinstance(s.targets[0], ast.Name) and isinstance(s.value, ast.Constant)}


def _decorator_name(node) -> str | None:
    return _name(node.func) if isinstance(node, ast.Call) else _name(node)


def _name(node) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None
