"""canonical_json writes exactly what json.dumps(indent=2, sort_keys=True, ensure_ascii=False) writes, faster."""
from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from areal_compiler.canonical import canonical_json

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
DATA = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                    max_leaves=30)


def reference(data) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@settings(max_examples=500, deadline=None)
@given(DATA)
def test_same_text_as_the_standard_library(data):
    assert canonical_json(data) == reference(data)


def test_awkward_values_spelled_like_the_standard_library():
    values = [-0.0, 5.0, 0.1, 1e-4, 1e-5, 1e15, 1e16, 123456789012345.6, 2 ** 63 - 1, -2 ** 63, 2 ** 64,
              "\u2028\x7f\x00\x1f\"\\/é😀", float("inf"), float("nan"), (1, "a"), {"b": {}, "a": [[], {}]}]
    for value in values:
        assert canonical_json({"v": value, "list": [value]}) == reference({"v": value, "list": [value]}), value
    assert canonical_json({2: "int keys", 1: 2}) == reference({2: "int keys", 1: 2})


def test_a_plan_needs_no_standard_library_fallback(monkeypatch):
    """The fast path really writes the files: a plan's data never falls back to json.dumps."""
    from helpers import EXAMPLES

    from areal_compiler import canonical
    from areal_compiler.pipeline import plan_file

    data = [plan_file(str(e)).plan.dump() for e in EXAMPLES]
    expected = [reference(d) for d in data]
    monkeypatch.setattr(canonical.json, "dumps", lambda *a, **k: "fallback")
    assert [canonical_json(d) for d in data] == expected
