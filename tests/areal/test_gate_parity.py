"""Gate parity: our staleness gate (compiler/agent/gate.py) against upstream AReaL 1.0.4's StalenessManager.

Random event sequences on random sizes; after every event both must report the same capacity, pending limit and
counters. Deliberate departures: our gate refuses accept/reject with nothing running (the agent answers 409;
upstream lets `running` go negative), so such events are checked to be refused and then left out for both; and our
`enqueued` never goes below 0 (upstream's does when a rollout is submitted without being enqueued)."""
from __future__ import annotations

import random

import pytest

from areal_compiler.agent.gate import GateError, StalenessGate

CASES = 600
SEED = 1202


def _case(rng: random.Random) -> dict:
    bs = rng.choice([0, 1, 2, 4, 8, 16, 32])
    mcr = rng.choice([0, 1, 3, bs, 2 * bs, 100])
    events, version = [], 0
    for _ in range(rng.randint(1, 80)):
        kind = rng.choices(["enqueued", "submitted", "accepted", "rejected", "version", "recover"],
                           [3, 4, 3, 1, 1, 0.2])[0]
        if kind in ("version", "recover"):
            version = rng.choice([version, version + 1, version + rng.randint(1, 5), rng.randint(0, 10)])
            events.append([kind, version])
        else:
            events.append([kind, None])
    return {"mcr": mcr, "bs": bs, "s": rng.choice([0, 1, 2, 5]), "events": events}


def _apply(gate: StalenessGate, event: str, arg) -> None:
    action = {"enqueued": gate.enqueue, "submitted": gate.submit, "accepted": gate.accept,
              "rejected": gate.reject}.get(event)
    if action is not None:
        action()
    elif event == "version":
        gate.set_version(arg)
    else:
        gate.recover(arg)


def ours(case: dict) -> tuple[list, list]:
    """(the events our gate took, our state after each); refused events must be the documented departure."""
    gate = StalenessGate(case["s"], case["bs"], case["mcr"], max(case["bs"], 16 * case["mcr"]))
    taken, states = [], []
    for event, arg in case["events"]:
        running = gate.state()["running"]
        try:
            _apply(gate, event, arg)
        except GateError:
            assert event in ("accepted", "rejected") and running == 0, (event, arg, gate.state())
            continue
        taken.append([event, arg])
        st = gate.state()
        states.append({k: st[k] for k in ("capacity", "pending_limit", "enqueued", "running", "accepted",
                                          "rejected")})
    return taken, states


@pytest.fixture(scope="module")
def compared(upstream):
    rng = random.Random(SEED)
    cases = [_case(rng) for _ in range(CASES)]
    mine = [ours(case) for case in cases]
    theirs = upstream({"gate": [dict(case, events=taken) for case, (taken, _) in zip(cases, mine)]})["gate"]
    return cases, mine, theirs


def test_capacity_and_counters_match_upstream_after_every_event(compared):
    cases, mine, theirs = compared
    events = refused = 0
    for case, (taken, our_states), their_states in zip(cases, mine, theirs):
        events += len(taken)
        refused += len(case["events"]) - len(taken)
        assert len(our_states) == len(their_states)
        upstream_enqueued_ok = True
        for i, (a, b) in enumerate(zip(our_states, their_states)):
            upstream_enqueued_ok = upstream_enqueued_ok and b["enqueued"] >= 0
            if not upstream_enqueued_ok:  # the departure: ours stays at 0 where upstream's goes negative
                a, b = dict(a, enqueued=None), dict(b, enqueued=None)
            assert a == b, f"case {case['mcr'], case['bs'], case['s']} after event {i} {taken[i]}: " \
                           f"ours {a}, upstream {b} (events {taken[:i + 1]})"
    assert events > 10000 and refused > 100, (events, refused)
    print(f"gate parity: {len(cases)} cases, {events} events compared, {refused} refused by us (departure)")
