"""The planned scheduler's view of a compiled plan (compiler/upstream/workers.py, stdlib only: runs without areal).

How upstream's controller sees the planned workers (one process per multi-node inference instance, forks on
their worker's node) and which requests must be refused, naming the experiment setting."""
from __future__ import annotations

import json

import pytest

from helpers import BASE, write
from areal_compiler.pipeline import plan_file
from areal_compiler.upstream.workers import PlanMismatch, check_request, node_hosts, planned_processes


def plan_dict(tmp_path, text: str) -> dict:
    result = plan_file(str(write(tmp_path, text)))
    assert result.ok, [d.render() for d in result.diagnostics]
    return json.loads(result.plan.to_json())


MULTI_NODE = BASE.replace('"sglang:d4"', '"sglang:d2t16"').replace("num_accelerators: 8", "num_accelerators: 40") \
    .replace('"fsdp:d4"', '"fsdp:d8"')


def test_a_multi_node_instance_is_one_worker_on_its_first_node(tmp_path):
    plan = plan_dict(tmp_path, MULTI_NODE)
    hosts = node_hosts(plan, "10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4,10.0.0.5")
    rollout = planned_processes(plan, "rollout", hosts)
    planned = [w for w in plan["workers"] if w["role"] == "rollout"]
    assert len(planned) == 4 and [p.index for p in rollout] == [0, 1]  # 2 instances of 2 nodes each
    assert [(p.host, list(p.ports)) for p in rollout] == \
        [(hosts[w["node"]], w["ports"]) for w in (planned[0], planned[2])]
    check_request(plan, "rollout", 2, 16, 2, None, False)  # upstream: replicas = d, gpu = t*p
    with pytest.raises(PlanMismatch, match=r"asks for 4 worker\(s\) of role `rollout` but the plan has 2"):
        check_request(plan, "rollout", 4, 8, 2, None, False)
    with pytest.raises(PlanMismatch, match=r"8 device\(s\) per worker of role `rollout` but the plan gives 16"):
        check_request(plan, "rollout", 2, 8, 2, None, False)
    with pytest.raises(PlanMismatch, match=r"3 ports per worker of role `actor`.*roles\.actor\.scheduling_spec"):
        check_request(plan, "actor", 8, 1, 3, None, False)


def test_colocated_roles_are_checked_against_their_strategy(tmp_path):
    text = BASE + "  ref:\n    backend: \"fsdp:d4\"\n    scheduling_strategy: {type: colocation, target: actor, fork: false}\n" \
        "  critic:\n    backend: \"fsdp:d4\"\n    cmd: python3 -m critic\n" \
        "    scheduling_strategy: {type: colocation, target: actor}\n"
    plan = plan_dict(tmp_path, text)
    check_request(plan, "ref", 4, None, None, "actor", False)  # runs inside the actor's processes
    check_request(plan, "critic", 4, None, None, "actor", True)
    critic = planned_processes(plan, "critic", node_hosts(plan, ""))
    actors = [w for w in plan["workers"] if w["role"] == "actor"]
    assert [list(p.ports) for p in critic] == [w["forks"][0]["ports"] for w in actors]
    with pytest.raises(PlanMismatch, match=r"set roles\.critic\.scheduling_strategy"):
        check_request(plan, "critic", 4, None, None, None, False)
    with pytest.raises(PlanMismatch, match=r"role `reward`, which the compiled experiment does not have"):
        check_request(plan, "reward", 1, None, None, None, False)


def test_node_hosts_must_name_every_node(tmp_path):
    plan = plan_dict(tmp_path, MULTI_NODE)
    assert node_hosts(plan, "") == ["127.0.0.1"] * plan["nodes"]
    with pytest.raises(PlanMismatch, match="AREAL_NODE_HOSTS names 2 node"):
        node_hosts(plan, "a,b")
