"""Fork orchestration onto three real agents: success with port health, all-or-nothing rollback, the CLI.

Run by pytest; each target worker has its own agent process."""
from __future__ import annotations

import json
import subprocess

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
