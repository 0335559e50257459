"""The staleness gate: every domain.md 5.3 test vector in-process and over HTTP, concurrency, the event log.

Run by pytest; the HTTP cases use the agent's real server (in-process) or a real agent serving the plan's gate."""
from __future__ import annotations

import json
import math
import threading

import pytest

from agent_helpers import TOKEN, agent_url, make_plan, script, wait_until, worker
from areal_compiler.agent.client import AgentClient, AgentError, GateClient
from areal_compiler.agent.gate import GateError, StalenessGate
from areal_compiler.agent.server import AgentServer

# (mcr, bs, s), then steps: ("submit", n) ("accept", n) ("reject", n) ("version", v) ("recover", v) ("capacity", c)
VECTORS = [
    ((10, 4, 2), [("capacity", 10)]),
    ((100, 32, 10), [("capacity", 100)]),
    ((5, 2, 10), [("submit", 3), ("capacity", 2)]),
    ((100, 4, 2), [("capacity", 12)]),
    ((1000, 4, 2), [("capacity", 12), ("version", 5), ("capacity", 32)]),
    ((10, 4, 2), [("submit", 3), ("capacity", 7)]),
    ((20, 4, 2), [("submit", 5), ("accept", 5), ("capacity", 7)]),
    ((5, 2, 5), [("submit", 5), ("capacity", 0)]),
    ((3, 2, 1), [("submit", 10), ("capacity", -7)]),
    ((0, 0, 0), [("capacity", 1)]),
    ((100, 8, 0), [("capacity", 8), ("version", 5), ("capacity", 48)]),
    ((10000, 64, 10), [("version", 1000000), ("capacity", 10000)]),
    ((10, 1, 2), [("capacity", 3)]),
    ((10, 4, 2), [("submit", 10), ("reject", 10), ("capacity", 10)]),
    ((20, 8, 3), [("submit", 20), ("accept", 15), ("reject", 5), ("capacity", 17)]),
    ((50, 32, 5), [("submit", 100), ("capacity", -50), ("accept", 80), ("reject", 20), ("capacity", 50)]),
    ((100, 8, 3), [("submit", 30), ("accept", 30), ("capacity", 2)]),
] + [((1000, 32, 5), [("version", v), ("capacity", min(1000, (6 + v) * 32))]) for v in (0, 1, 10, 100, 1000)] \
  + [((1000, 16, 2), [("recover", v), ("capacity", 48)]) for v in (0, 5, 10, 50)] \
  + [((1000, 16, 2), [("recover", 10), ("submit", r), ("capacity", 48 - r)]) for r in (1, 5, 16)]


def run_steps(gate, steps, capacity):
    for step, value in steps:
        if step == "capacity":
            assert capacity() == value
        elif step in ("version", "recover"):
            getattr(gate, "set_version" if step == "version" else "recover")(value)
        else:
            for _ in range(value):
                getattr(gate, step)()


class GateHost:
    """What AgentServer needs from an agent to serve the gate routes."""
    host = "127.0.0.1"

    def __init__(self, gate):
        self.gate = gate

    def forked_alive(self):
        return 0

    def log(self, message):
        raise AssertionError(message)


@pytest.fixture(scope="module")
def gate_server():
    host = GateHost(None)
    server = AgentServer(("127.0.0.1", 0), host, TOKEN)
    server.start()
    yield host, "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def served(gate_server):
    """served(gate) -> URL of the agent's real HTTP server, now serving that gate."""
    host, url = gate_server

    def serve(gate):
        host.gate = gate
        return url
    return serve


@pytest.mark.parametrize("sizes,steps", VECTORS)
def test_vector_in_process(sizes, steps):
    mcr, bs, s = sizes
    gate = StalenessGate(s, bs, mcr)
    run_steps(gate, steps, gate.capacity)


@pytest.mark.parametrize("sizes,steps", VECTORS)
def test_vector_over_http(sizes, steps, served):
    mcr, bs, s = sizes
    client = GateClient(served(StalenessGate(s, bs, mcr)), TOKEN)
    run_steps(client, steps, lambda: client.state()["capacity"])
    client.close()


def test_defaults_queue_size_and_pending_limit():
    gate = StalenessGate(2, 8)
    assert (gate.max_concurrent_rollouts, gate.queue_size, gate.pending_limit()) == (8, 128, 24)
    with pytest.raises(ValueError, match="queue size is too small"):
        StalenessGate(2, 64, 2)  # 16 * 2 = 32 < 64
    with pytest.raises(ValueError, match="queue size is too small"):
        StalenessGate(2, 8, 100, queue_size=7)


def test_eval_gate_has_infinite_staleness():
    gate = StalenessGate(None, 4, 10)
    for _ in range(10):
        gate.submit()
        gate.accept()
    assert gate.capacity() == 10 and gate.pending_limit() == math.inf
    assert StalenessGate(math.inf, 4, 10).state()["pending_limit"] is None


def test_try_submit_grants_only_capacity_and_enqueue_counts():
    gate = StalenessGate(0, 2, 5)
    gate.enqueue()
    gate.enqueue()
    assert gate.state()["enqueued"] == 2
    assert [gate.try_submit() for _ in range(4)] == [True, True, False, False]
    assert gate.state()["enqueued"] == 0 and gate.state()["running"] == 2
    with pytest.raises(GateError):
        StalenessGate(0, 2).accept()


def test_concurrent_submits_in_process():
    gate = StalenessGate(2, 4, 10)
    threads = [threading.Thread(target=lambda: [gate.submit() for _ in range(100)]) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert gate.state()["running"] == 1000


def test_concurrent_accepts_and_rejects_in_process():
    gate = StalenessGate(2, 4, 10)
    for _ in range(100):
        gate.submit()
    threads = [threading.Thread(target=gate.accept if i % 2 else gate.reject) for i in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    state = gate.state()
    assert (state["running"], state["accepted"], state["rejected"]) == (0, 50, 50)


def _http_threads(url, work):
    """Ten threads, each with its own client, run work(client, i); any exception fails the test."""
    failures = []

    def body(i):
        client = GateClient(url, TOKEN)
        try:
            work(client, i)
        except Exception as exc:  # surfaced below
            failures.append(exc)
        finally:
            client.close()
    threads = [threading.Thread(target=body, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_concurrency_vectors_over_http(served):
    gate = StalenessGate(2, 4, 10)
    _http_threads(served(gate), lambda client, i: [client.submit() for _ in range(100)])
    assert gate.state()["running"] == 1000
    gate = StalenessGate(2, 4, 10)
    for _ in range(100):
        gate.submit()
    _http_threads(served(gate), lambda client, i: [(client.accept if i % 2 else client.reject)()
                                                   for _ in range(10)])
    state = gate.state()
    assert (state["running"], state["accepted"], state["rejected"]) == (0, 50, 50)


def test_agent_serves_the_plans_gate_and_logs_every_event(tmp_path, agents):
    mcr, bs, s = 6, 4, 1
    gate = {"role": "w", "index": 0, "max_head_offpolicyness": s, "max_concurrent_rollouts": mcr,
            "consumer_batch_size": bs, "queue_size": 64}
    body = "import os, time; open(%r, 'w').write(os.environ['AREAL_GATE_URL']); time.sleep(60)"
    plan = make_plan(tmp_path / "plan.json", [worker("w", 0, script(body % str(tmp_path / "gate-url")))], gate=gate)
    run = tmp_path / "run"
    agents(plan, "w/0", run)
    url = agent_url(plan, "w", 0)
    assert wait_until(lambda: (tmp_path / "gate-url").exists() and (tmp_path / "gate-url").read_text()) == url
    versions = iter(range(1, 1000))
    version_lock = threading.Lock()

    def work(client, i):
        for n in range(40):
            if client.try_submit():
                (client.accept if n % 3 else client.reject)()
            if i == 0 and n % 8 == 7:
                with version_lock:
                    client.set_version(next(versions))
    _http_threads(url, work)
    with pytest.raises(AgentError) as info:
        GateClient(url, TOKEN).accept()  # nothing running any more
    assert info.value.status == 409
    events = [json.loads(line) for line in (run / "gate-events.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {e["event"] for e in events} >= {"submitted", "accepted", "rejected", "version"}
    for event in events:  # staleness was never exceeded, nor concurrency
        assert event["running"] <= mcr
        assert event["accepted"] + event["running"] <= (s + event["version"] + 1) * bs
    assert sum(e["event"] == "submitted" for e in events) == events[-1]["accepted"] + events[-1]["rejected"]
    with pytest.raises(AgentError) as info:
        AgentClient(url, "wrong").request("GET", "/gate")
    assert info.value.status == 401
