"""Canonical JSON text of plain data: sorted keys, two-space indent, UTF-8 kept, a final newline.

Called for every JSON file a compile writes (plan.json, launch.json, manifest.json) and for the experiment hash."""
from __future__ import annotations

import json

from pydantic_core import to_json

# Byte-for-byte what json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) writes. The standard library
# takes its slow pure-Python path whenever `indent` is set (a third of a compile); pydantic-core's encoder writes
# the same text once the keys are sorted, for every value whose spelling the two share.
_LIMIT = 2 ** 63


class _Unusual(Exception):
    """A value the two encoders may spell differently (an exponent float, a huge int, a non-str key, ...)."""


def canonical_json(data, built: str | None = None) -> str:
    """BUILT: the key of a top-level dict whose value the caller has built canonical already (every dict's keys in
    sorted order; only strings, small ints, lists and dicts), encoded as it is: the bulk of a large plan (its
    workers) or Ray placement (its nodes), which walking again would cost more than encoding."""
    try:
        if built is not None:
            return to_json({k: data[k] if k == built else _sorted(data[k]) for k in sorted(data)},
                           indent=2).decode() + "\n"
        return to_json(_sorted(data), indent=2).decode() + "\n"
    except (_Unusual, ValueError):
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _sorted(value):
    kind = type(value)
    if kind is dict:
        if not all(type(k) is str for k in value):
            raise _Unusual
        return {k: _sorted(value[k]) for k in sorted(value)}
    if kind is list or kind is tuple:
        if all(type(v) is str for v in value) or all(type(v) is int and -_LIMIT < v < _LIMIT for v in value):
            return value  # the usual leaves (names, ports, devices): nothing to sort or refuse, one quick look
        return [_sorted(v) for v in value]
    if kind is str or kind is bool or value is None:
        return value
    if kind is int and -_LIMIT < value < _LIMIT:
        return value
    if kind is float and value == value and "e" not in repr(value) and "inf" not in repr(value):
        return value
    raise _Unusual
