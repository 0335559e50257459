"""The lists' rule (agent/lists.py): which address lists stay in the environment and which go to a file that
<NAME>_FILE names, how every reader of ours finds them, and what the agent gives its worker on a small plan."""
from __future__ import annotations

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent_helpers import PY, agent_env, make_plan, start_agent, worker
from helpers import ROOT
from areal_compiler.agent.lists import LIST_LIMIT, LISTS_BUDGET, kept, list_file, place_lists, read_list
from areal_compiler.agent.node import choose_node
from areal_compiler.agent.plan import PlanError, node_hosts
from areal_compiler.targets.k8s_layout import node_list
from areal_compiler.upstream.workers import PlanMismatch
from areal_compiler.upstream.workers import node_hosts as planned_node_hosts


def test_a_list_stays_up_to_the_limit_and_goes_to_a_file_past_it():
    assert kept({"A": LIST_LIMIT}) == {"A"}
    assert kept({"A": LIST_LIMIT + 1}) == set()
    assert kept({"A": 0}) == {"A"}


def test_the_lists_together_stay_within_the_budget_shortest_first():
    quarter = LISTS_BUDGET // 4
    assert kept({name: quarter for name in "ABCD"}) == set("ABCD")  # exactly the budget
    assert kept({name: quarter for name in "ABCDE"}) == set("ABCD")  # ties by name: E is the fifth
    sizes = {"BIG": LIST_LIMIT, "SMALL": 10, **{name: LIST_LIMIT - 400 for name in "BCDE"}}
    assert kept(sizes) == {"SMALL", "B", "C", "D", "E"}  # the longest goes to a file when they do not all fit
    assert sum(sizes[n] for n in kept(sizes)) <= LISTS_BUDGET


def test_place_lists_sets_the_value_or_a_file_holding_exactly_it(tmp_path):
    long, short = "h" * (LIST_LIMIT + 1), "a:1,b:2"
    env = {"AREAL_ADDRS_X": "stale", "AREAL_ADDRS_Y_FILE": "/stale", "OTHER": "kept"}
    place_lists(env, {"AREAL_ADDRS_X": long, "AREAL_ADDRS_Y": short}, str(tmp_path / "lists"))
    assert env["AREAL_ADDRS_Y"] == short and "AREAL_ADDRS_Y_FILE" not in env and env["OTHER"] == "kept"
    assert "AREAL_ADDRS_X" not in env
    assert open(env["AREAL_ADDRS_X_FILE"], encoding="utf-8").read() == long
    assert read_list(env, "AREAL_ADDRS_X") == long and read_list(env, "AREAL_ADDRS_Y") == short
    assert read_list(env, "AREAL_ADDRS_Z") is None


def test_one_file_per_distinct_list_written_once(tmp_path):
    first = list_file(str(tmp_path), "AREAL_NODE_HOSTS", "a,b")
    before = (tmp_path / first).stat().st_ino
    assert list_file(str(tmp_path), "AREAL_NODE_HOSTS", "a,b") == first  # another agent: the same file, kept
    assert (tmp_path / first).stat().st_ino == before
    other = list_file(str(tmp_path), "AREAL_NODE_HOSTS", "c,d")  # a requeued attempt on other hosts
    assert other != first and open(other, encoding="utf-8").read() == "c,d"
    (tmp_path / first).write_text("a,")  # cut short (a host crash before it reached the disk): written again
    assert open(list_file(str(tmp_path), "AREAL_NODE_HOSTS", "a,b"), encoding="utf-8").read() == "a,b"


def test_a_file_cut_into_pieces_is_read_whole(tmp_path):
    (tmp_path / "node-hosts.1").write_text("a,b,")  # the Kubernetes target's ConfigMap pieces
    (tmp_path / "node-hosts.2").write_text("c")
    assert read_list({"AREAL_NODE_HOSTS_FILE": str(tmp_path / "node-hosts")}, "AREAL_NODE_HOSTS") == "a,b,c"


def test_every_reader_of_the_node_addresses_honours_the_file(tmp_path):
    plan = {"nodes": 3}
    (tmp_path / "hosts").write_text("n0,n1,n2")
    environ = {"AREAL_NODE_HOSTS_FILE": str(tmp_path / "hosts")}
    assert node_hosts(plan, environ) == ["n0", "n1", "n2"]  # the agent
    assert node_hosts(plan, dict(environ, AREAL_NODE_HOSTS="x,y,z")) == ["x", "y", "z"]  # the variable first
    assert node_hosts(plan, {}) == ["127.0.0.1"] * 3
    with pytest.MonkeyPatch.context() as patch:  # upstream's planned scheduler, in the driver
        patch.delenv("AREAL_NODE_HOSTS", raising=False)
        patch.setenv("AREAL_NODE_HOSTS_FILE", str(tmp_path / "hosts"))
        assert planned_node_hosts(plan) == ["n0", "n1", "n2"]
        patch.setenv("AREAL_NODE_HOSTS_FILE", str(tmp_path / "missing"))
        with pytest.raises(PlanMismatch, match="cannot read AREAL_NODE_HOSTS_FILE .*missing"):
            planned_node_hosts(plan)
    with pytest.raises(PlanError, match="cannot read AREAL_NODE_HOSTS_FILE .*missing: No such file"):
        node_hosts(plan, {"AREAL_NODE_HOSTS_FILE": str(tmp_path / "missing")})


def test_a_small_job_keeps_its_lists_in_the_environment(tmp_path):
    show = ("import json, os; print(json.dumps({k: v for k, v in os.environ.items() "
            "if k.startswith(('AREAL_ADDRS_', 'AREAL_NODE_HOSTS'))}))")
    plan = make_plan(tmp_path / "plan.json", [worker("a", 0, [PY, "-c", show], ports=1)])
    (tmp_path / "h").write_text("127.0.0.1")  # the target's file: the worker gets the short list as a variable
    proc = start_agent(plan, "a/0", tmp_path / "run", env=agent_env(AREAL_NODE_HOSTS_FILE=str(tmp_path / "h")))
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    port = json.loads(plan.read_text())["workers"][0]["ports"][0]
    assert json.loads(out) == {"AREAL_ADDRS_A": f"127.0.0.1:{port}", "AREAL_NODE_HOSTS": "127.0.0.1"}
    assert not (tmp_path / "run" / "lists").exists()


def test_a_pod_command_names_a_long_node_list_by_runs():
    assert node_list((0, 1, 2, 3)) == "0,1,2,3"  # short: as it always was
    many = tuple(range(4096)) + (5000,) + tuple(range(6000, 6300))
    assert node_list(many) == "0-4095,5000,6000-6299"
    for index, node in ((0, 0), (4095, 4095), (4096, 5000), (4097, 6000), (4396, 6299)):
        assert choose_node(node_list(many), "I", {"I": str(index)}) == node
    for bad in ("3-1", "1-", "-2", "a-b", "1,,2"):
        with pytest.raises(PlanError, match="runs FIRST-LAST"):
            choose_node(bad, "I", {"I": "0"})


class Recorder(BaseHTTPRequestHandler):
    """A stand-in for the demo's rollout server, trainer and gate: answers every POST and records its path."""

    def do_POST(self):  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.paths.append(self.path)
        body = b'{"granted": true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_demo_controller_finds_the_servers_through_the_file_form(tmp_path):
    """examples/demo/controller.py with both address lists as <NAME>_FILE (as a large job hands them over): it
    reaches the rollout server and the trainer the files name, and only them."""
    servers = {name: ThreadingHTTPServer(("127.0.0.1", 0), Recorder) for name in ("rollout", "actor", "gate")}
    for server in servers.values():
        server.paths = []
        threading.Thread(target=server.serve_forever, daemon=True).start()
    address = {name: "127.0.0.1:%d" % server.server_address[1] for name, server in servers.items()}
    (tmp_path / "rollout").write_text(address["rollout"] + ",127.0.0.1:1", encoding="utf-8")  # two, cycled
    (tmp_path / "actor").write_text(address["actor"], encoding="utf-8")
    (tmp_path / "token").write_text("t", encoding="utf-8")
    env = agent_env(AREAL_ADDRS_ROLLOUT_FILE=str(tmp_path / "rollout"), AREAL_ADDRS_ACTOR_FILE=str(tmp_path / "actor"),
                    AREAL_GATE_URL="http://" + address["gate"], AREAL_AGENT_TOKEN_FILE=str(tmp_path / "token"))
    try:
        done = subprocess.run([PY, str(ROOT / "examples" / "demo" / "controller.py"), "--steps", "1",
                               "--batch-size", "1"], env=env, capture_output=True, text=True, timeout=60)
    finally:
        for server in servers.values():
            server.shutdown()
    assert done.returncode == 0, done.stderr
    assert (servers["rollout"].paths, servers["actor"].paths) == (["/generate"], ["/train"])
