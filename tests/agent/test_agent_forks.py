"""Fork orchestration onto three real agents: success with port health, all-or-nothing rollback, the CLI.

Run by pytest; each target worker has its own agent process."""
from __future__ import annotations

import json
import subprocess
import time

import pytest

from agent_helpers import (PY, TOKEN, agent_env, agent_url, alive, make_plan, script, wait_until, worker)
from areal_compiler.agent.client import AgentClient, AgentError
from areal_compiler.agent.forks import ForkError, fork_workers

SLEEP = script("import time; time.sleep(60)")
FAIL_ON_FLAG = "import os, sys, time; sys.exit(1) if os.environ['AREAL_WORKER_INDEX'] == '1' else time.sleep(60)"
LISTEN = ("import argparse, http.server; p = argparse.ArgumentParser(); p.add_argument('--port', type=int); "
          "http.server.HTTPServer(('127.0.0.1', p.parse_args().port), http.server.BaseHTTPRequestHandler)"
          ".serve_forever()")


@pytest.fixture
def three_agents(tmp_path, agents):
    proxy = {"role": "proxy", "index": 9, "argv": script(LISTEN), "port_count": 1}  # declares role proxy
    workers = [worker("actor", i, SLEEP, forks=[proxy] if i == 0 else []) for i in range(3)]
    plan = make_plan(tmp_path / "plan.json", workers, runtime={"fork_commands": "any"})
    data = json.loads(plan.read_text())
    data["workers"][0]["forks"] = []  # only the role's declaration is wanted, not a start-up fork
    plan.write_text(json.dumps(data))
    for i in range(3):
        agents(plan, "actor/%d" % i, tmp_path / "run")
    clients = [AgentClient(agent_url(plan, "actor", i), TOKEN) for i in range(3)]
    for client in clients:
        wait_until(lambda: _up(client), what="agent up")
    yield plan, clients
    for client in clients:
        client.close()


def _up(client):
    try:
        return client.health()
    except AgentError:
        return None


def test_second_fork_failing_rolls_back_the_others(three_agents, tmp_path):
    plan, clients = three_agents
    with pytest.raises(ForkError) as info:
        fork_workers(json.loads(plan.read_text()), "side", "actor", TOKEN, command="%s -c %r" % (PY, FAIL_ON_FLAG),
                     timeout=10)  # a role the plan does not declare (fork_commands: any): no ports
    assert sorted(info.value.failures) == [1]
    assert "index(es) 1:" in str(info.value) and "exited with code 1" in str(info.value)
    for client in clients:
        assert client.health()["forked_children"] == 0
        assert client.forked() == []  # killed through its own agent, by its real index
    pids = [json.loads((tmp_path / "run" / "state" / ("side.%d.json" % i)).read_text())["pid"]["child"]
            for i in range(3)]
    assert not any(alive(pid) for pid in pids)


def test_fork_with_ports_waits_until_listening(three_agents, tmp_path):
    plan, clients = three_agents
    forked = fork_workers(json.loads(plan.read_text()), "proxy", "actor", TOKEN, run_dir=str(tmp_path / "orch"),
                          timeout=20)  # the plan's command for proxy, with the port its agent allocated
    assert [f["worker_index"] for f in forked] == [0, 1, 2]
    for item, client in zip(forked, clients):
        entry = client.forked()[0]
        assert entry["listening"] and entry["pid"] == item["pid"] and entry["ports"] == item["ports"]
    record = json.loads((tmp_path / "orch" / "forks" / "proxy.json").read_text(encoding="utf-8"))
    assert [f["pid"] for f in record["forked"]] == [f["pid"] for f in forked]


def test_fork_cli_reports_failed_indices(three_agents, tmp_path):
    plan, clients = three_agents
    argv = [PY, "-m", "areal_compiler.agent", "fork", "--plan", str(plan), "--role", "side", "--target", "actor",
            "--command", "%s -c %r" % (PY, FAIL_ON_FLAG), "--run-dir", str(tmp_path / "orch"), "--timeout", "10"]
    result = subprocess.run(argv, env=agent_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "actor/1:" in result.stderr and "index(es) 1:" in result.stderr
    assert all(client.forked() == [] for client in clients)
    assert not (tmp_path / "orch" / "forks").exists()


LATE_LISTEN = "import time; time.sleep(1.5); " + LISTEN


def test_the_agent_answers_a_wait_when_the_child_listens_not_on_a_poll_grid(three_agents):
    plan, clients = three_agents
    client = clients[0]
    ports = client.alloc_ports(1)["ports"]
    client.fork("late", 0, [PY, "-c", LATE_LISTEN, "--port", str(ports[0])], ports=ports)
    early = client.wait_forked("late", 0, 0.2)  # the child sleeps first: not listening yet when the wait ends
    assert early["alive"] and not early["listening"]
    entry = client.wait_forked("late", 0, 20)
    assert entry["alive"] and entry["listening"] and entry["ports"] == ports
    client.fork("dies", 0, [PY, "-c", "import sys; sys.exit(3)"], ports=client.alloc_ports(1)["ports"])
    ended = client.wait_forked("dies", 0, 20)  # ends the wait at once: it will never listen
    assert not ended["alive"] and ended["exit_code"] == 3
    with pytest.raises(AgentError) as unknown:
        client.wait_forked("nosuch", 0, 1)
    assert unknown.value.status == 404
    with pytest.raises(AgentError) as bad:
        client.request("POST", "/forked/wait", {"role": "late", "worker_index": 0, "timeout": "soon"})
    assert bad.value.status == 400
    with pytest.raises(AgentError) as anonymous:
        AgentClient(agent_url(plan, "actor", 0), None).wait_forked("late", 0, 1)
    assert anonymous.value.status == 401


def test_fork_orchestration_does_not_wait_out_a_poll_interval(three_agents):
    plan, clients = three_agents
    started = time.monotonic()
    fork_workers(json.loads(plan.read_text()), "proxy", "actor", TOKEN, timeout=20, poll=30)
    assert time.monotonic() - started < 15  # with ports, the agent says when each child listens: no 30 s poll
    assert all(client.forked()[0]["listening"] for client in clients)
