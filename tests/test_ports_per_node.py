"""Ports planned per logical node, and the local target running several logical nodes on one host: ports moved
apart, devices apart when the host has them (else a warning at compile time and a message at start)."""
from __future__ import annotations

import json
import os
import sys

from helpers import BASE, ROOT, areal, free_port_block, write
from areal_compiler.agent.contract import worker_env
from areal_compiler.agent.plan import host_devices, load_plan, on_this_host
from areal_compiler.pipeline import compile_file, plan_file

sys.path.insert(0, str(ROOT / "tests" / "bench"))
from synthetic import synthetic  # noqa: E402  (the scale benchmark's experiment)

PROXY = ("  proxy:\n    cmd: python3 proxy.py\n    scheduling_spec: {port_count: 200}\n"
         "    scheduling_strategy: {type: colocation, target: actor}\n")


def errors(result):
    return [d for d in result.diagnostics if d.is_error]


def test_every_node_reuses_the_port_numbers_so_65536_devices_plan(tmp_path):
    result = plan_file(str(write(tmp_path, synthetic(8192))))  # 114,688+ ports in all: E471 before
    assert result.ok, [d.render() for d in result.diagnostics]
    plan = result.plan
    firsts = {w.node: w.agent_port for w in reversed(plan.workers)}  # each node's first process
    assert plan.nodes == 8192 and set(firsts.values()) == {plan.runtime["base_port"] + 2}


def test_a_lower_base_port_that_fits_one_node_is_named(tmp_path):
    # one node: 4 rollout + 4 actor workers (2 ports and an agent's each) and 4 proxies of 200 ports = 824
    result = plan_file(str(write(tmp_path, BASE + PROXY + "runtime: {base_port: 65000}\n")))
    [error] = errors(result)
    assert (error.code, error.span.line, error.span.col) == ("E471", 17, 22)
    assert "leaves room for 536 ports, but logical node 0 uses 824" in error.message
    assert error.hint == "use a base_port from 1024 to 64712"


def test_a_node_no_host_can_hold_points_at_the_role_not_at_base_port(tmp_path):
    text = ("experiment_name: exp\ntrial_name: t0\ncompute: {accelerator: CPU, num_accelerators: 0}\nroles:\n"
            "  helper:\n    replicas: 4096\n    cmd: python3 helper.py\n    scheduling_spec: {port_count: 256}\n")
    [error] = errors(plan_file(str(write(tmp_path, text))))
    assert (error.code, error.span.line, error.span.col) == ("E471", 8, 23)  # port_count, not 1:1
    assert "logical node 0 uses 1052672 ports" in error.message and "64512" in error.message
    assert "base_port" not in error.hint and "port_count" in error.hint


def test_base_port_below_1024_says_why(tmp_path):
    [error] = errors(plan_file(str(write(tmp_path, BASE + "runtime: {base_port: 80}\n"))))
    assert error.code == "E471" and "below 1024: only root may listen" in error.message
    assert "leaves no room" not in error.message


def test_local_moves_nodes_apart_and_fails_located_when_they_cannot_fit(tmp_path):
    example = (ROOT / "examples" / "two-node-decoupled.yaml").read_text()
    fits = compile_file(str(write(tmp_path, example)), ("local", "slurm"))
    assert fits.ok
    launch = json.loads(fits.artifacts["local/launch.json"].content)
    assert not any("AREAL_NODE_HOSTS" in p["env"] for p in launch["processes"])  # every node at 127.0.0.1
    [warning] = [d for d in fits.diagnostics if d.code == "W490"]
    assert warning.span.line == 6 and "when it has 16 GPU devices" in warning.message
    # node 0 uses 12 ports, node 1 24: both fit from 65510, but on one host the two need 36
    high = write(tmp_path, example.replace("hung_after: 60}", "hung_after: 60, base_port: 65510}"), "high.yaml")
    [error] = errors(compile_file(str(high), ("local",)))
    assert (error.code, error.span.line) == ("E490", 23)  # runtime.base_port
    assert "set runtime.base_port to at most 65500" in error.message
    assert compile_file(str(high), ("slurm",)).ok


def _two_node_plan(tmp_path) -> dict:
    result = compile_file(str(ROOT / "examples" / "two-node-decoupled.yaml"), ("local",))
    return json.loads(result.artifacts["local/plan.json"].content)


def test_nodes_at_one_address_get_their_ports_apart_and_devices_when_the_host_has_them(tmp_path):
    dev = tmp_path / "dev"
    dev.mkdir()
    for i in range(16):
        (dev / f"nvidia{i}").touch()
    (dev / "nvidiactl").touch()  # not a device
    planned = _two_node_plan(tmp_path)
    assert on_this_host(_two_node_plan(tmp_path), ["node-a", "node-b"], str(dev)) == planned  # hosts of their own
    moved = on_this_host(_two_node_plan(tmp_path), ["127.0.0.1", "127.0.0.1"], str(dev))  # local: one host
    actor0 = next(w for w in moved["workers"] if w["role"] == "actor" and w["index"] == 0)
    assert actor0["ports"] == [20012, 20013] and actor0["agent_port"] == 20014  # node 0 uses 20000..20011
    assert actor0["devices"] == [8]
    rollout1 = next(w for w in moved["workers"] if w["role"] == "rollout" and w["index"] == 1)
    assert rollout1["ports"] == [20003, 20004] and rollout1["devices"] == [2, 3]  # node 0 stays
    env = worker_env(moved, actor0, ["127.0.0.1"] * 2)
    assert env["MASTER_PORT"] == "20013" and env["CUDA_VISIBLE_DEVICES"] == "8"
    every = [p for w in moved["workers"] for p in w["ports"] + [w["agent_port"]]]
    assert len(every) == len(set(every))
    (dev / "nvidia15").unlink()  # 15 devices for 2 x 8: the nodes share the planned indices
    shared = on_this_host(_two_node_plan(tmp_path), ["10.0.0.7", "10.0.0.7"], str(dev))  # two slurmd, one host
    actor0 = next(w for w in shared["workers"] if w["role"] == "actor" and w["index"] == 0)
    assert actor0["devices"] == [0] and actor0["ports"] == [20012, 20013]


def test_the_agent_reads_which_nodes_share_a_host_from_their_addresses(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(_two_node_plan(tmp_path)))
    actor0 = {"AREAL_NODE_HOSTS": "node-a,node-b"}, {"AREAL_NODE_HOSTS": "127.0.0.1,127.0.0.1"}, {}
    ports = [next(w for w in load_plan(str(path), env)["workers"] if w["role"] == "actor")["ports"] for env in actor0]
    assert ports == [[20000, 20001], [20012, 20013], [20012, 20013]]


TWO_HOSTS = """\
experiment_name: nodes
trial_name: t0
compute: {accelerator: GPU_1xA10, num_accelerators: 2}
roles:
  a: {replicas: 1, cmd: "python3 {demo}/server.py --action a", scheduling_spec: {gpu: 1, cpu: 1, mem: 1}}
  b: {replicas: 1, cmd: "python3 {demo}/server.py --action b", scheduling_spec: {gpu: 1, cpu: 1, mem: 1}}
driver:
  cmd: python3 -c "import os; print('SEEN', os.environ['AREAL_ADDRS_A'], os.environ['AREAL_ADDRS_B'])"
runtime: {heartbeat_interval: 0.5, hung_after: 5, grace_period: 2, base_port: {port}}
"""


def test_two_logical_nodes_run_on_this_host_without_a_collision(tmp_path):
    port = free_port_block(8)
    path = write(tmp_path, TWO_HOSTS.replace("{demo}", str(ROOT / "examples" / "demo")).replace("{port}", str(port)))
    plan = plan_file(str(path)).plan
    assert plan.worker("a", 0).ports == plan.worker("b", 0).ports == [port, port + 1]  # the same numbers planned
    env = {**os.environ, "AREAL_HOME": str(tmp_path / "home")}
    result = areal("run", str(path), env=env, timeout=120)
    out, err = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0, out + err
    seen = next(line for line in out.splitlines() if "SEEN" in line).split()
    assert seen[-2:] == [f"127.0.0.1:{port}", f"127.0.0.1:{port + 4}"]  # node 1 moved past node 0's 4
    # ports (a's two, a's agent's and the driver's agent's)
    shared = host_devices(json.loads(plan.to_json())) < 2
    assert ("this host has" in err and "share them" in err) == shared
    assert "W490" in err  # the compile's warning, located
