"""The agent's HTTP API against a real agent: auth, fork policy, validation, kill, size limits.

Run by pytest; one agent (declared fork policy) serves the whole module."""
from __future__ import annotations

import http.client
import json
import time

import pytest

from agent_helpers import (PY, TOKEN, agent_url, alive, make_plan, script, start_agent, stop_agent,
                           wait_until, worker)
from areal_compiler.agent.client import AgentClient, AgentError

SLEEP = script("import time; time.sleep(60)")
DECLARED = [PY, "-c", "import time, sys; time.sleep(60)", "--peer", "127.0.0.1"]  # the agent adds --port P


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("http")
    fork = {"role": "ref", "index": 0, "argv": DECLARED, "env": {"REF_MODE": "eval"}, "port_count": 1}
    plan = make_plan(tmp / "plan.json", [worker("w", 0, SLEEP, forks=[fork]), worker("rollout", 0, SLEEP)])
    proc = start_agent(plan, "w/0", tmp / "run")
    url = agent_url(plan, "w", 0)
    client = AgentClient(url, TOKEN)
    wait_until(lambda: _health(client), what="agent up")
    yield {"url": url, "client": client, "run": tmp / "run", "plan": plan}
    client.close()
    stop_agent(proc)


def _health(client):
    try:
        return client.health()
    except AgentError:
        return None


def raw(url, method, path, body=b"", headers=None):
    host, port = url[len("http://"):].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def auth(**extra):
    return dict({"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"}, **extra)


def fork_body(**fields):
    body = {"role": "ref", "worker_index": 7, "raw_cmd": SLEEP}
    body.update(fields)
    return json.dumps(body).encode()


def test_health_needs_no_token(agent):
    status, body = raw(agent["url"], "GET", "/health")
    assert status == 200 and body == {"status": "healthy", "forked_children": 1}  # the start-up fork


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic " + TOKEN},
                                     {"Authorization": "Bearer"}])
def test_fork_without_a_good_token_is_401(agent, headers):
    status, body = raw(agent["url"], "POST", "/fork", fork_body(), headers)
    assert status == 401 and body["status"] == "error"
    assert raw(agent["url"], "GET", "/forked", b"", headers)[0] == 401


def test_undeclared_command_is_403(agent):
    status, body = raw(agent["url"], "POST", "/fork", fork_body(), auth())
    assert status == 403 and "declares" in body["error"]


@pytest.mark.parametrize("payload", [b"{not json", b"[1, 2]", b'{"role": "ref"}',
                                     b'{"role": "ref", "worker_index": "1", "raw_cmd": ["x"]}',
                                     b'{"role": "ref", "worker_index": 1, "raw_cmd": "sleep 1"}',
                                     b'{"role": "ref", "worker_index": 1, "raw_cmd": []}',
                                     b'{"role": "ref", "worker_index": 1, "raw_cmd": ["x"], "env": {"A": 1}}',
                                     b'{"role": 5, "worker_index": 1, "raw_cmd": ["x"]}'])
def test_malformed_or_mistyped_fork_is_400(agent, payload):
    status, body = raw(agent["url"], "POST", "/fork", payload, auth())
    assert status == 400 and body["status"] == "error"


def test_unknown_kill_is_404_and_oversize_is_413(agent):
    status, _ = raw(agent["url"], "POST", "/kill_forked_worker",
                    json.dumps({"role": "nobody", "worker_index": 3}).encode(), auth())
    assert status == 404
    status, body = raw(agent["url"], "POST", "/fork", b"{" + b" " * (65 * 1024) + b"}", auth())
    assert status == 413 and body["status"] == "error" and "65536" in body["error"]
    assert raw(agent["url"], "GET", "/nowhere", b"", auth())[0] == 404


def test_alloc_ports_are_distinct(agent):
    client = agent["client"]
    first, second = client.alloc_ports(3), client.alloc_ports(2)
    ports = first["ports"] + second["ports"]
    assert len(set(ports)) == 5 and first["host"] == "127.0.0.1"
    with pytest.raises(AgentError) as info:
        client.alloc_ports(0)
    assert info.value.status == 400


def test_declared_fork_runs_then_kill_stops_it(agent):
    client = agent["client"]
    port = client.alloc_ports(1)["ports"][0]
    argv = DECLARED + ["--port", str(port)]
    with pytest.raises(AgentError) as info:  # a port this agent never handed out does not match
        client.fork("ref", 3, DECLARED + ["--port", "1"])
    assert info.value.status == 403
    with pytest.raises(AgentError) as info:  # an env entry the plan does not declare
        client.fork("ref", 3, argv, env={"LD_PRELOAD": "/tmp/x.so"})
    assert info.value.status == 403
    with pytest.raises(AgentError) as info:  # a declared env entry with another value
        client.fork("ref", 3, argv, env={"REF_MODE": "train"})
    assert info.value.status == 403
    reply = client.fork("ref", 3, argv, env={"REF_MODE": "eval"}, ports=[port])
    assert reply["status"] == "success" and reply["host"] == "127.0.0.1"
    assert alive(reply["pid"])
    with pytest.raises(AgentError) as info:
        client.fork("ref", 3, argv)
    assert info.value.status == 409
    listed = {(e["role"], e["worker_index"]): e for e in client.forked()}
    assert listed[("ref", 3)]["alive"] and listed[("ref", 3)]["pid"] == reply["pid"]
    assert client.health()["forked_children"] == 2
    assert client.kill_forked_worker("ref", 3)["status"] == "success"
    wait_until(lambda: not alive(reply["pid"]), timeout=3, what="forked child gone")
    state = json.loads((agent["run"] / "state" / "ref.3.json").read_text(encoding="utf-8"))
    assert state["status"] == "stopped" and state["kind"] == "forked"
    assert state["exit_code"] == 128 + 15  # its own status, not stolen by the agent's orphan reaper
    with pytest.raises(AgentError) as info:
        client.kill_forked_worker("ref", 3)
    assert info.value.status == 404


def test_worker_argv_of_a_role_is_declared_too(agent):
    client = agent["client"]
    reply = client.fork("rollout", 9, SLEEP)
    assert alive(reply["pid"])
    client.kill_forked_worker("rollout", 9)
    with pytest.raises(AgentError) as info:  # a planned worker's own slot is never forked over
        client.fork("rollout", 0, SLEEP)
    assert info.value.status == 409


def test_gate_routes_404_on_an_agent_without_the_gate(agent):
    assert raw(agent["url"], "GET", "/gate", b"", auth())[0] == 404
    assert raw(agent["url"], "GET", "/gate")[0] == 401


def test_any_policy_runs_any_command(tmp_path, agents):
    plan = make_plan(tmp_path / "plan.json", [worker("w", 0, SLEEP)], runtime={"fork_commands": "any"})
    agents(plan, "w/0", tmp_path / "run")
    client = AgentClient(agent_url(plan, "w", 0), TOKEN)
    wait_until(lambda: _health(client), what="agent up")
    reply = client.fork("proxy", 0, script("import time; time.sleep(30)"), env={"X": "1"})
    assert alive(reply["pid"])
    with pytest.raises(AgentError) as info:
        client.fork("proxy", 1, ["/nonexistent/binary"])
    assert info.value.status == 400
    client.close()



def test_deeply_nested_json_is_a_400_not_a_500(agent):
    status, body = raw(agent["url"], "POST", "/alloc_ports", b"[" * 60000, auth())
    assert status == 400 and "not valid JSON" in body["error"]


def test_fork_role_must_be_a_role_name(agent):
    status, body = raw(agent["url"], "POST", "/fork", fork_body(role="../../etc"), auth())
    assert status == 400 and "role name" in body["error"]


def test_connections_over_the_limit_close_the_longest_idle_and_the_agent_still_serves(agent):
    import socket

    from areal_compiler.agent.server import MAX_CONNECTIONS

    host, port = agent["url"][len("http://"):].split(":")
    idle = [socket.create_connection((host, int(port))) for _ in range(MAX_CONNECTIONS + 20)]
    try:
        time.sleep(0.5)
        closed = 0
        for sock in idle:
            sock.settimeout(0.05)
            try:
                closed += sock.recv(1) == b""  # made room for a newer connection: never more than the limit
            except socket.timeout:
                pass
        assert closed == 20
    finally:
        for sock in idle:
            sock.close()
    wait_until(lambda: _health(agent["client"]), what="agent serving again")
