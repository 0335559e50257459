"""records.py validates through pydantic-core alone with core_schema.py: the same values, defaults and errors as
pydantic's models (run here side by side on every example and on thousands of broken variants of them)."""
from __future__ import annotations

import copy

import pytest
import yaml

from helpers import EXAMPLES, ROOT

# Values every field is tried with: each type pydantic tells apart in strict mode, and the out-of-range ones.
WRONG = ("text", 3, 2.5, True, None, [], {}, [1], {"k": "v"}, float("nan"), float("inf"), 2 ** 70, -1)


def _both(data):
    """(pydantic's result, records.py's result): the dumps of a valid experiment, or the errors of an invalid one."""
    from pydantic import ValidationError

    from areal_compiler.spec import records
    from areal_compiler.spec.models import Experiment

    results = []
    for validate, dump in ((Experiment.model_validate, lambda m, **kw: m.model_dump(mode="json", **kw)),
                           (records.validate, lambda r, **kw: r.dump(**kw))):
        try:
            value = validate(copy.deepcopy(data))
        except ValidationError as exc:
            results.append(("invalid", [(e["type"], e["loc"], e["msg"], repr(e["input"]), e.get("ctx"))
                                        for e in exc.errors(include_url=False)]))
        else:
            results.append(("valid", [dump(value), dump(value, exclude_none=True),
                                      dump(value, exclude_defaults=True)]))
    return results


def _variants(data, path=()):
    """Every way to break DATA one place at a time: each value replaced by each WRONG value, each key dropped, an
    unknown key added to each mapping."""
    if isinstance(data, dict):
        yield path + ("<unknown key>",), {**data, "bogus_key": 1}
        for key, value in data.items():
            yield path + (key, "<dropped>"), {k: v for k, v in data.items() if k != key}
            for wrong in WRONG:
                yield path + (key, repr(wrong)), {**data, key: wrong}
            for where, changed in _variants(value, path + (key,)):
                yield where, {**data, key: changed}
    elif isinstance(data, list):
        for i, value in enumerate(data):
            for where, changed in _variants(value, path + (i,)):
                yield where, data[:i] + [changed] + data[i + 1:]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_records_validate_every_example_and_its_broken_variants_as_pydantic_does(example):
    data = yaml.safe_load(example.read_text(encoding="utf-8"))
    pydantic_result, records_result = _both(data)
    assert pydantic_result[0] == "valid" and records_result == pydantic_result
    count = 0
    for where, variant in _variants(data):
        pydantic_result, records_result = _both(variant)
        assert records_result == pydantic_result, where
        count += 1
    assert count > 200  # the examples are big enough that this breaks every kind of field


def test_every_default_and_the_hash_match_pydantics():
    """A minimal experiment is nearly all defaults: every default record and factory, and the experiment's hash
    (the root of every stable id, from the dump without defaults)."""
    from areal_compiler.plan.build import experiment_sha256
    from areal_compiler.spec import records
    from areal_compiler.spec.models import Experiment

    data = {"experiment_name": "e", "trial_name": "t", "compute": {"accelerator": "CPU", "num_accelerators": 0},
            "roles": {"a": {"replicas": 1, "cmd": "x"}}, "driver": {"cmd": "d"},
            "secrets": {"S": {"file": "/f", "kubernetes": {"name": "n", "key": "k"}}},
            "staleness": {"max_head_offpolicyness": 1, "consumer_batch_size": 2}}
    record, model = records.validate(data), Experiment.model_validate(data)
    assert record.dump() == model.model_dump(mode="json")
    assert record.dump(exclude_defaults=True) == model.model_dump(mode="json", exclude_defaults=True)
    explicit = records.validate({**data, "runtime": {"base_port": 20000}, "areal": {}})
    assert explicit == record and experiment_sha256(explicit) == experiment_sha256(record)


def test_records_are_read_only_and_compare_by_their_fields():
    from areal_compiler.spec import records

    exp = records.validate(yaml.safe_load(EXAMPLES[0].read_text(encoding="utf-8")))
    role = next(iter(exp.roles.values()))
    with pytest.raises(AttributeError, match="read-only"):
        role.cmd = "rm -rf /"
    assert type(role) is records.Role and role == records.validate(
        yaml.safe_load(EXAMPLES[0].read_text(encoding="utf-8"))).roles[next(iter(exp.roles))]
    assert role != exp.compute and role.scheduling_spec != role.scheduling_strategy


def test_allowed_keys_are_the_models_fields():
    from areal_compiler.spec import records
    from areal_compiler.spec.models import Experiment, Role, SchedulingSpec

    assert records.allowed_keys(()) == list(Experiment.model_fields)
    assert records.allowed_keys(("roles", "any-role")) == list(Role.model_fields)
    assert records.allowed_keys(("roles", "r", "scheduling_spec")) == list(SchedulingSpec.model_fields)
    assert records.allowed_keys(("roles",)) == records.allowed_keys(("compute", "accelerator")) == []
    assert records.allowed_keys(("no_such_key", "x")) == []


def test_the_committed_core_schema_is_derived_from_the_models():
    from areal_compiler.spec.derive import module_text

    committed = (ROOT / "compiler" / "spec" / "core_schema.py").read_text(encoding="utf-8")
    assert committed == module_text(), "compiler/spec/core_schema.py is stale: run " \
                                       "`python -m areal_compiler.spec.derive > compiler/spec/core_schema.py`"

