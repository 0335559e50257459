"""Runs upstream AReaL's own allocation parser and StalenessManager on a batch of inputs (JSON in, JSON out).

Run by the parity tests with the AReaL venv's python: `python upstream_oracle.py < request.json`. Never imports
the project: it reports only what upstream does, so the test compares the two."""
from __future__ import annotations

import functools
import json
import sys

from areal.api import alloc_mode
from areal.infra.staleness_manager import StalenessManager

# Upstream builds a new Lark grammar on every parse (tens of ms); share one built parser across the batch.
# The parse and the transformer stay upstream's own, untouched.
alloc_mode.Lark = functools.lru_cache(maxsize=None)(alloc_mode.Lark)


def _allocation(a) -> dict:
    p = a.parallel
    strategy = a.scheduling_strategy
    kind = getattr(strategy.type, "value", strategy.type)
    return {"backend": a.backend, "name": a.name, "d": p.data_parallel_size, "t": p.tensor_parallel_size,
            "p": p.pipeline_parallel_size, "c": p.context_parallel_size, "e": p.expert_parallel_size,
            "etp": p.expert_tensor_parallel_size, "world": p.world_size,
            "colocated_with": strategy.target if kind == "colocation" else None}


def parse(kind: str, text: str) -> dict:
    """kind "mode": a whole allocation_mode string; "backend": one role's backend (ModelAllocation.from_str)."""
    try:
        if kind == "mode":
            mode = alloc_mode._AllocationMode.from_str(text)
            allocations = [_allocation(a) for a in mode.allocations]
            return {"ok": True, "allocations": allocations, "world": mode.world_size}
        single = alloc_mode.ModelAllocation.from_str(text)
        return {"ok": True, "allocations": [_allocation(single)], "world": single.parallel.world_size}
    except Exception as exc:  # upstream raises ValueError, AssertionError, its own errors: all are rejections
        return {"ok": False, "error": "%s: %s" % (type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")}


class _Version:
    def __init__(self) -> None:
        self.version = 0

    def get_version(self) -> int:
        return self.version


def gate(case: dict) -> list:
    """Apply the events of one case to a StalenessManager; the state after each event."""
    provider = _Version()
    manager = StalenessManager(provider, case["mcr"], case["bs"], case["s"])
    states = []
    for event, arg in case["events"]:
        if event == "version":
            provider.version = arg
        elif event == "recover":  # upstream's trainer sets the engine's version and tells the manager
            provider.version = arg
            manager.on_version_recovered(arg)
        else:
            getattr(manager, "on_rollout_" + event)()
        stat = manager.get_stats()
        states.append({"capacity": manager.get_capacity(), "pending_limit": manager.get_pending_limit(),
                       "enqueued": stat.enqueued, "running": stat.running, "accepted": stat.accepted,
                       "rejected": stat.rejected})
    return states


def main() -> int:
    request = json.load(sys.stdin)
    out = {"parse": [parse(kind, text) for kind, text in request.get("parse", [])],
           "gate": [gate(case) for case in request.get("gate", [])]}
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
