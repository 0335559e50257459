"""The plan: placement, colocation forks, ports, the worker environment contract, the gate."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from helpers import BASE, EXAMPLES, ROOT, areal, write
from areal_compiler.agent.contract import fork_env, run_trainer_argv, worker_argv, worker_env
from areal_compiler.agent.policy import is_declared
from areal_compiler.pipeline import plan_file

HOSTS = ["node-a", "node-b", "node-c"]


def env_of(plan, role, index, fork=None):
    """The environment the agent derives for a worker (or for its forked child of role `fork`)."""
    data = json.loads(plan.to_json())
    w = next(x for x in data["workers"] if x["role"] == role and x["index"] == index)
    env = worker_env(data, w, HOSTS)
    if fork is None:
        return env
    own, unset = fork_env(data, w, fork, index, env, HOSTS)
    return {**{k: v for k, v in env.items() if k not in unset}, **own}, sorted(unset)


def plan_of(path):
    result = plan_file(str(path))
    assert result.ok, [d.render() for d in result.diagnostics]
    return result.plan


def test_two_node_example_fills_every_device_exactly_once():
    plan = plan_of(ROOT / "examples" / "two-node-decoupled.yaml")
    used = Counter((w.node, d) for w in plan.workers for d in w.devices)
    assert set(used) == {(n, d) for n in range(2) for d in range(8)}
    assert set(used.values()) == {1}


def test_areal_plan_text_shows_every_device():
    out = areal("plan", str(ROOT / "examples" / "two-node-decoupled.yaml")).stdout.decode()
    for node in (0, 1):
        section = out.split(f"node {node}\n")[1].split("\nnode ")[0]
        devices = [line for line in section.splitlines() if line.strip().startswith("device")]
        assert len(devices) == 8 and all("(free)" not in line for line in devices)
        assert all(len(line.split()) == 3 for line in devices)  # "device N role/i": one worker each


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_no_device_is_used_twice_and_ports_are_unique_per_node(example):
    plan = plan_of(example)
    if not any(r.colocated_with is None and r.workers and plan.accelerator["devices_per_node"]
               for r in plan.roles.values()):
        return
    if not plan.dump().get("allow_device_sharing"):
        used = Counter((w.node, d) for w in plan.workers for d in w.devices)
        assert max(used.values()) == 1
    ports = [(w.node, p) for w in plan.workers for p in [*w.ports, w.agent_port, *(q for f in w.forks for q in f.ports)]]
    assert len(ports) == len(set(ports))
    for node in range(plan.nodes):  # every node's ports start at base_port: a port belongs to one host
        assert min(p for n, p in ports if n == node) == plan.runtime["base_port"]


def test_colocated_ref_is_forked_onto_every_actor_worker():
    plan = plan_of(ROOT / "examples" / "single-node-colocated-ref.yaml")
    actors = [w for w in plan.workers if w.role == "actor"]
    assert [f.role for w in actors for f in w.forks] == ["ref"] * 4
    assert [f.index for w in actors for f in w.forks] == [0, 1, 2, 3]
    ref0 = actors[0].forks[0]
    assert plan.roles["ref"].argv == plan.roles["actor"].argv  # no cmd of its own: the target's command
    ref_env, _ = env_of(plan, "actor", 0, fork="ref")
    assert ref_env["MASTER_PORT"] == str(ref0.ports[1]) != env_of(plan, "actor", 0)["MASTER_PORT"]
    assert "ref" not in {w.role for w in plan.workers}


def test_fork_false_role_has_no_processes():
    plan = plan_of(ROOT / "examples" / "rollout-proxy.yaml")
    assert plan.roles["eval-rollout"].workers == 0
    assert all(f.role != "eval-rollout" for w in plan.workers for f in w.forks)
    proxy = [f for w in plan.workers for f in w.forks if f.role == "proxy-rollout"]
    argv = worker_argv(json.loads(plan.to_json()), "proxy-rollout", proxy[0].index, proxy[0].ports)
    assert argv[:3] == ["python3", "-m", "areal.experimental.openai.proxy.proxy_rollout_server"]
    assert argv[-2:] == ["--port", str(proxy[0].ports[0])]


def test_environment_contract(tmp_path):
    plan = plan_of(ROOT / "examples" / "two-node-decoupled.yaml")
    env = env_of(plan, "actor", 3)
    assert env["AREAL_ROLE"] == "actor" and env["AREAL_WORKER_INDEX"] == "3"
    assert env["RANK"] == "3" and env["WORLD_SIZE"] == "8" and env["LOCAL_RANK"] == "3"
    assert env["MASTER_ADDR"] == "node-b" and env["MASTER_PORT"] == str(plan.worker("actor", 0).ports[1])
    assert env["CUDA_VISIBLE_DEVICES"] == "3" and env["AREAL_NODE_RANK"] == "1" and env["AREAL_HOST"] == "node-b"
    assert env["AREAL_ADDRS_ROLLOUT"].split(",")[1] == f"node-a:{plan.worker('rollout', 1).ports[0]}"
    gate_worker = plan.worker(plan.gate.role, plan.gate.index)
    assert env["AREAL_GATE_URL"] == f"http://{HOSTS[gate_worker.node]}:{gate_worker.agent_port}"
    assert env_of(plan, "rollout", 2)["CUDA_VISIBLE_DEVICES"] == "4,5"
    assert plan.secrets["WANDB_API_KEY"]["file"] == "/shared/secrets/wandb_api_key"
    assert "WANDB_API_KEY" not in json.dumps(env)


def test_multi_node_sglang_instance(tmp_path):
    text = BASE.replace('"sglang:d4"', '"sglang:d1t16"').replace("num_accelerators: 8", "num_accelerators: 24") \
        .replace('"fsdp:d4"', '"fsdp:d8"')
    plan = plan_of(write(tmp_path, text))
    rollout = [w for w in plan.workers if w.role == "rollout"]
    assert [(w.node, len(w.devices), env_of(plan, "rollout", w.index)["AREAL_INSTANCE_NODE_RANK"])
            for w in rollout] == [(0, 8, "0"), (1, 8, "1")]


def test_small_roles_are_packed_without_overlap(tmp_path):
    text = BASE.replace('"sglang:d4"', '"sglang:d2t3"').replace('"fsdp:d4"', '"fsdp:d2"')
    plan = plan_of(write(tmp_path, text))
    assert [(w.role, w.node, w.devices) for w in plan.workers] == [
        ("rollout", 0, [0, 1, 2]), ("rollout", 0, [3, 4, 5]), ("actor", 0, [6]), ("actor", 0, [7])]


def test_unpackable_roles_are_a_located_error(tmp_path):
    # 5 + 5 + 3x2 = 16 devices on two nodes of 8, but the third role's last worker fits nowhere.
    text = BASE.replace("num_accelerators: 8", "num_accelerators: 16").replace('"sglang:d4"', '"sglang:d1t5"') \
        .replace('"fsdp:d4"', '"sglang:d1t5"') + '  gen:\n    backend: "sglang:d3t2"\n    cmd: python3 -m gen\n'
    result = plan_file(str(write(tmp_path, text)))
    assert not result.ok
    assert [(d.code, d.span.line) for d in result.diagnostics] == [("E404", 13)]


def test_plan_json_and_svg(tmp_path):
    data = json.loads(areal("plan", "-o", "json", str(EXAMPLES[0])).stdout)["data"]
    assert data["plan_version"] == 3 and data["workers"]
    svg = areal("plan", "--format", "svg", str(ROOT / "examples" / "ppo-critic.yaml")).stdout.decode()
    assert svg.startswith("<svg") and svg.count("<rect") >= 16 and "+critic/0" in svg


def test_experiment_hash_ignores_spelled_out_defaults_and_key_order(tmp_path):
    spelled = BASE.replace("  num_accelerators: 8\n", "  num_accelerators: 8\n  allow_device_sharing: false\n")
    reordered = BASE.replace("experiment_name: exp\ntrial_name: t0\n", "trial_name: t0\nexperiment_name: exp\n")
    changed = BASE.replace("python3 -m train", "python3 -m train2")
    sha = [plan_of(write(tmp_path, t, f"{i}.yaml")).experiment_sha256
           for i, t in enumerate([BASE, spelled, reordered, changed])]
    assert sha[0] == sha[1] == sha[2] != sha[3]


def test_a_forked_helper_does_not_inherit_the_trainers_rendezvous(tmp_path):
    text = BASE + "  proxy:\n    cmd: python3 proxy.py\n    scheduling_strategy: {type: colocation, target: actor}\n"
    plan = plan_of(write(tmp_path, text))
    proxy_env, unset = env_of(plan, "actor", 1, fork="proxy")
    assert unset == ["LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE"]
    assert "RANK" not in proxy_env
    ref_env, unset = env_of(plan_of(ROOT / "examples" / "single-node-colocated-ref.yaml"), "actor", 1, fork="ref")
    assert unset == [] and ref_env["RANK"] == "1"  # a forked trainer has rendezvous variables of its own


def test_plan_json_is_linear_in_workers(tmp_path):
    """The plan states shared facts once: doubling the nodes doubles (not quadruples) plan.json."""
    sizes = []
    for nodes in (2, 4):
        text = BASE.replace("num_accelerators: 8", f"num_accelerators: {8 * nodes}") \
            .replace('"sglang:d4"', f'"sglang:d{4 * nodes}"').replace('"fsdp:d4"', f'"fsdp:d{4 * nodes}"')
        sizes.append(len(plan_of(write(tmp_path, text, f"{nodes}.yaml")).to_json()))
    assert sizes[1] < 2.2 * sizes[0]


@pytest.mark.parametrize(("staleness", "mcr", "queue"), [
    ("{max_head_offpolicyness: 2, consumer_batch_size: 16}", 16, 256),
    ("{max_head_offpolicyness: 2, consumer_batch_size: 16, max_concurrent_rollouts: 0}", 16, 256),
    ("{max_head_offpolicyness: 2, consumer_batch_size: 16, max_concurrent_rollouts: null, queue_size: 0}", 16, 256),
    ("{max_head_offpolicyness: 2, consumer_batch_size: 16, max_concurrent_rollouts: 4, queue_size: 0}", 4, 64),
    ("{max_head_offpolicyness: 2, consumer_batch_size: 16, max_concurrent_rollouts: 4, queue_size: 20}", 4, 20),
])
def test_gate_defaults_follow_upstream_zero_means_default(tmp_path, staleness, mcr, queue):
    """Upstream's rollout controller: `max_concurrent_rollouts or batch size`, `queue_size or 16 x concurrency`."""
    plan = plan_of(write(tmp_path, BASE + f"staleness: {staleness}\n"))
    assert (plan.gate.max_concurrent_rollouts, plan.gate.queue_size) == (mcr, queue)


UPSTREAM = BASE.replace("    cmd: python3 -m rollout\n", "    cmd: python3 -m areal.infra.rpc.rpc_server\n"
                        "    upstream: areal\n") + """\
  proxy:
    cmd: python3 -m proxy --verbose
    upstream: areal
    scheduling_spec: {port_count: 1}
    scheduling_strategy: {type: colocation, target: rollout}
driver: {cmd: python3 -m areal.launcher --config c.yaml, upstream: areal}
areal: {trial_name: trial_0, name_resolve: {type: etcd3, etcd3_addr: "etcd:2379"}}
fileroot: /shared/areal
"""


def test_upstream_roles_get_upstream_local_schedulers_arguments(tmp_path):
    """The arguments areal 1.0.4's LocalScheduler.create_workers passes after --port, in its order; names and name
    service from the `areal` block (defaults: the experiment's names, upstream's defaults), fileroot ours."""
    plan = json.loads(plan_of(write(tmp_path, UPSTREAM)).to_json())
    rollout = next(w for w in plan["workers"] if w["role"] == "rollout" and w["index"] == 1)
    assert worker_argv(plan, "rollout", 1, rollout["ports"]) == [
        "python3", "-m", "areal.infra.rpc.rpc_server", "--port", str(rollout["ports"][0]),
        "--experiment-name", "exp", "--trial-name", "trial_0", "--role", "rollout", "--worker-index", "1",
        "--name-resolve-type", "etcd3", "--nfs-record-root", "/tmp/areal/name_resolve", "--etcd3-addr", "etcd:2379",
        "--fileroot", "/shared/areal"]
    fork = rollout["forks"][0]
    assert worker_argv(plan, "proxy", fork["index"], fork["ports"])[:9] == [
        "python3", "-m", "proxy", "--verbose", "--port", str(fork["ports"][0]), "--experiment-name", "exp",
        "--trial-name"]
    assert worker_argv(plan, "actor", 0, [1, 2]) == ["python3", "-m", "train", "--port", "1"]  # not upstream
    # the driver gets nothing appended: its agent runs it through agent.pyz run-trainer
    assert worker_argv(plan, "driver", 0, []) == ["python3", "-m", "areal.launcher", "--config", "c.yaml"]
    assert run_trainer_argv(worker_argv(plan, "driver", 0, []), "/t/agent.pyz") == [
        "python3", "/t/agent.pyz", "run-trainer", "-m", "areal.launcher", "--config", "c.yaml"]


def test_a_declared_upstream_fork_must_carry_exactly_its_upstream_arguments(tmp_path):
    plan = json.loads(plan_of(write(tmp_path, UPSTREAM)).to_json())
    fork = next(w for w in plan["workers"] if w["role"] == "rollout")["forks"][0]
    argv = worker_argv(plan, "proxy", 0, [40000])
    assert is_declared(plan, "proxy", 0, argv, None, {40000})
    assert not is_declared(plan, "proxy", 1, argv, None, {40000})  # another index's arguments
    assert not is_declared(plan, "proxy", 0, argv, None, {40001})  # a port this agent did not allocate
    assert not is_declared(plan, "proxy", 0, argv[:-2], None, {40000})
    assert fork["index"] == 0
