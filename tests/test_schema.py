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


def ecma(schema: dict):
    """A validator for SCHEMA with JSON Schema's own `pattern` semantics (ECMA-262, as editors apply it): `$` ends
    the string; Python's `re.search`, which jsonschema uses, would also let `$` match before a final line break."""
    import re

    def pattern(validator, regex, instance, _):
        if validator.is_type(instance, "string") and not re.search(re.sub(r"(?<!\\)\$", r"(?![\\s\\S])", regex),
                                                                   instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {regex!r}")
    return jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": pattern})(schema)


STRINGS = ["", " ", "UPPER", "-x", "x-", "a_b", "a b", "a\nb", "x\n", "ä", "a/b", "/a:b", "a\"b", "a\\b", "/a%b",
           "/", "//", "relative", "1.2.3", "1", "1.27", "0.99", "1.33\n", "x" * 300, "a" * 64, "host", "host:123456",
           "-a/b", "/x", "a.b/", "driver", "9LIVES", "CUDA_VISIBLE_DEVICES", "RANK", "AREAL_AGENT_X", "AREAL_RUN_ID"]
OWNER = {"slurm": "slurm", "kubernetes": "kubernetes", "ray": "ray"}  # whose check reads a top-level block


def _bad_values(keywords: dict, value) -> list:
    """Values that break the constraint: just outside each bound, strings its pattern or enum refuses, ..."""
    schema = {k: v for k, v in keywords.items() if k != "propertyNames"}
    if "minimum" in keywords:
        low, high = keywords["minimum"], keywords["maximum"]
        return [low / 2 if isinstance(low, float) and low > 0 else low - 1, high + 1]
    if "minItems" in keywords:
        return [[]]
    return [s for s in STRINGS + ([str(value).lower(), f"{value}x"] if "enum" in keywords else [])
            if not ecma({**schema, "type": "string"}).is_valid(s)]


def _place(data: dict, path: tuple, value, key: bool = False) -> bool:
    """Put VALUE at PATH (`*`: the first entry of a mapping, made if there is none; `[]`: a list's first item), or
    rename that entry's key to VALUE (KEY); False when the example cannot hold it (e.g. it has no driver)."""
    node = data
    for i, part in enumerate(path[:-1] if not key else path):
        if part == "driver" and "driver" not in node:
            return False
        if part == "*":
            if not node:
                node["X"] = {"file": "/x", "kubernetes": {"name": "s", "key": "k"}} if path[i - 1] == "secrets" else []
            part = next(iter(node))
        node = node.setdefault(part, {}) if isinstance(node, dict) else node
        if node is None:
            return False
    if key:
        if not node:
            node["X"] = "x" if path[-1] == "env_vars" else {"file": "/x"}
        first = next(iter(node))
        node[value] = node.pop(first)
    elif path[-1] == "[]":
        node[:] = [value]
    else:
        if path[-1] == "*":
            node.setdefault("label", [])
        node[path[-1] if path[-1] != "*" else next(iter(node))] = value
    return True


def _validator_rejects(tmp_path, data: dict, target: str) -> bool:
    from areal_compiler import targets
    from areal_compiler.pipeline import plan_file

    path = tmp_path / "mutant.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    result = plan_file(str(path))
    return not result.ok or bool(targets.get(target).check(result.plan))


def test_each_constraint_of_the_schema_is_one_the_validator_enforces(tmp_path):
    """Issue 24 item 12: for each constraint the schema states (taken from the validator's own bounds and patterns),
    values that break it, placed into the examples (keys renamed, absent blocks added): the committed schema and the
    validator both reject every one."""
    from areal_compiler.schema import constraints

    schema = ecma(json.loads((ROOT / "schemas" / "experiment.schema.json").read_text(encoding="utf-8")))
    examples = [yaml.safe_load(p.read_text(encoding="utf-8")) for p in EXAMPLES]
    checked, disagree = 0, []
    for n, (path, keywords) in enumerate(constraints()):
        target = "kubernetes" if path[:1] == ("secrets",) and "kubernetes" in path else OWNER.get(path[0], "local")
        used = 0
        for data in examples[n % len(examples):] + examples[:n % len(examples)]:
            if used == 2 or _validator_rejects(tmp_path, data, target):
                continue  # an example this target cannot take as it is says nothing about the mutation
            key = "propertyNames" in keywords
            rule = keywords["propertyNames"] if key else keywords
            if path == ("areal", "name_resolve"):
                mutants = [{"type": "etcd3", "etcd3_addr": "no-port"}, {"nfs_record_root": "relative/root"}]
            else:
                mutants = _bad_values(rule, "x")
            for bad in mutants:
                mutant = json.loads(json.dumps(data))
                if not _place(mutant, path, bad, key):
                    break
                checked += 1
                if schema.is_valid(mutant) or not _validator_rejects(tmp_path, mutant, target):
                    disagree.append((path, bad, "schema accepts" if schema.is_valid(mutant) else "validator accepts"))
            else:
                used += 1
        assert used, f"no example could carry a mutation of {path}"
    assert not disagree, disagree
    assert checked > 300, checked


# Fields whose values the validator refuses for reasons no schema of the field alone can state.
CROSS_FIELD = {("roles", "*", "backend"): "the allocation grammar (A0xx, located inside the string)",
               ("roles", "*", "scheduling_strategy", "target"): "must name another role",
               ("staleness", "gate_role"): "must name a role with its own workers",
               ("compute", "num_accelerators"): "a multiple of the accelerator's devices per node",
               ("driver", "cmd"): "with upstream: areal, `python SCRIPT` or `python -m MODULE`",
               ("roles", "*", "cmd"): "split like a shell would; no --port",
               ("image",): "the Kubernetes target needs one"}
SWEEP = {str: ["", " ", "UPPER", "a_b", "x\n", "/a%b", "relative", "1.27", "-x"], int: [-1, 0, 10 ** 6, 2 ** 31],
         float: [-1.0, 0.0, 1e6]}


def _leaves(node, path=()):
    """(path, generic path, value) of every scalar, the generic path with `*` for role names, map keys and indices."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else None
    if items is None:
        yield path, path, node
        return
    for key, value in items:
        mapped = isinstance(node, list) or path[-1:] in (("roles",), ("secrets",), ("env_vars",), ("node_affinity",))
        for full, generic, leaf in _leaves(value, path + (key,)):
            yield full, generic[:len(path)] + ("*" if mapped else key,) + generic[len(path) + 1:], leaf


def test_every_value_the_validator_refuses_alone_the_schema_refuses(tmp_path):
    """Issue 24 item 12, the other way round: each field of the examples (the first place it occurs), set to values
    of its type that are often wrong; wherever the validator refuses the value, the schema does too (unless only
    another field can say why: CROSS_FIELD), and the schema refuses nothing the validator takes."""
    schema = ecma(json.loads((ROOT / "schemas" / "experiment.schema.json").read_text(encoding="utf-8")))
    seen, refused, disagree = set(), 0, []
    for example in EXAMPLES:
        data = yaml.safe_load(example.read_text(encoding="utf-8"))
        targets = [t for t in ("local", "slurm", "kubernetes", "ray") if not _validator_rejects(tmp_path, data, t)]
        for path, generic, value in _leaves(data):
            if generic in seen or type(value) not in SWEEP:
                continue
            seen.add(generic)
            for bad in SWEEP[type(value)]:
                mutant = json.loads(json.dumps(data))
                _set(mutant, path, bad)
                validator = any(_validator_rejects(tmp_path, mutant, t) for t in targets)
                refused += validator
                if validator != (not schema.is_valid(mutant)) and not (validator and generic in CROSS_FIELD):
                    disagree.append((generic, bad, "validator only" if validator else "schema only"))
    assert not disagree, disagree
    assert refused > 150 and len(seen) > 35, (refused, len(seen))


def _set(data, path: tuple, value) -> None:
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


def test_the_schema_takes_the_bounds_themselves():
    from areal_compiler.schema import constraints

    for path, keywords in constraints():
        if "minimum" in keywords:
            for value in (keywords["minimum"], keywords["maximum"]):
                assert jsonschema.Draft202012Validator({**keywords}).is_valid(value), (path, value)
