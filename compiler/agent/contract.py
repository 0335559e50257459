"""The worker environment contract, derived at run time from plan.json and the node addresses.

Called by supervisor.py for its worker and every forked child; documented in docs/agent.md ("The plan and the worker
environment"), a public interface. The plan states shared facts once, so deriving one process's environment reads
the plan once (linear in workers) and the plan itself stays linear."""
from __future__ import annotations

import os
from typing import Any, Dict, FrozenSet, List, Optional, Sequence, Tuple

from .lists import NODE_HOSTS
from .plan import PlanError, http_url, node_host

# Variables that describe one role's process group: a forked child of another role never inherits them.
ROLE_SCOPED = frozenset({"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                         "AREAL_INSTANCE_INDEX", "AREAL_INSTANCE_NODE_RANK", "AREAL_INSTANCE_NODES"})
# What a forked child takes from the worker it is forked from instead of setting itself.
INHERITED = ("AREAL_EXPERIMENT_NAME", "AREAL_TRIAL_NAME", "AREAL_RUN_ID", "AREAL_NODE_RANK", "AREAL_NUM_NODES",
             "AREAL_HOST")


def env_suffix(role: str) -> str:
    return role.upper().replace("-", "_")


def _processes(plan: Dict[str, Any]) -> Dict[str, List[Tuple[int, List[int]]]]:
    """role -> (node, ports) of each of its processes in index order (forks sit on their worker's node)."""
    out: Dict[str, List[Tuple[int, List[int]]]] = {}
    for w in plan["workers"]:
        out.setdefault(w["role"], []).append((int(w["node"]), [int(p) for p in w.get("ports") or []]))
        for f in w.get("forks") or []:
            out.setdefault(f["role"], []).append((int(w["node"]), [int(p) for p in f.get("ports") or []]))
    return out


def _shared(plan: Dict[str, Any], hosts: Sequence[str], processes) -> Dict[str, str]:
    """What every process sees alike: each role's addresses, and the gate."""
    env = {"AREAL_ADDRS_%s" % env_suffix(role): ",".join("%s:%d" % (node_host(hosts, n), p[0]) for n, p in procs if p)
           for role, procs in processes.items()}
    gate = plan.get("gate")
    if gate:
        owner = next(w for w in plan["workers"] if w["role"] == gate["role"] and w["index"] == gate["index"])
        env["AREAL_GATE_URL"] = http_url(node_host(hosts, int(owner["node"])), int(owner["agent_port"]))
    return env


def _identity(plan: Dict[str, Any], role: str, index: int, node: int, hosts: Sequence[str],
              processes) -> Dict[str, str]:
    spec = plan["roles"][role]
    env = {
        "AREAL_EXPERIMENT_NAME": plan["experiment_name"], "AREAL_TRIAL_NAME": plan["trial_name"],
        "AREAL_RUN_ID": plan["run_id"], "AREAL_ROLE": role, "AREAL_WORKER_INDEX": str(index),
        "AREAL_ROLE_WORKERS": str(spec["workers"]), "AREAL_NODE_RANK": str(node),
        "AREAL_NUM_NODES": str(plan["nodes"]), "AREAL_HOST": node_host(hosts, node),
    }
    if spec["kind"] == "training":
        same_node = [i for i, (n, _) in enumerate(processes[role]) if n == node]
        first_node, first_ports = processes[role][0]
        env.update({"RANK": str(index), "WORLD_SIZE": str(spec["workers"]),
                    "LOCAL_RANK": str(same_node.index(index)), "LOCAL_WORLD_SIZE": str(len(same_node)),
                    "MASTER_ADDR": node_host(hosts, first_node), "MASTER_PORT": str(first_ports[1])})
    instance_nodes = int(spec.get("instance_nodes") or 1)
    if spec["kind"] == "inference" and instance_nodes > 1:
        env.update({"AREAL_INSTANCE_INDEX": str(index // instance_nodes),
                    "AREAL_INSTANCE_NODE_RANK": str(index % instance_nodes),
                    "AREAL_INSTANCE_NODES": str(instance_nodes)})
    return env


def worker_env(plan: Dict[str, Any], worker: Dict[str, Any], hosts: Sequence[str]) -> Dict[str, str]:
    """A planned worker's (or the driver's) variables: identity, rendezvous, devices, its role's env_vars,
    then the addresses every process shares."""
    processes = _processes(plan)
    env = _identity(plan, worker["role"], int(worker["index"]), int(worker["node"]), hosts, processes)
    env["AREAL_PORTS"] = ",".join(str(p) for p in worker.get("ports") or [])
    visibility = (plan.get("accelerator") or {}).get("visibility_env")
    if visibility:
        env[visibility] = ",".join(str(d) for d in worker.get("devices") or [])
    env.update(plan["roles"][worker["role"]].get("env") or {})
    env.update(_shared(plan, hosts, processes))
    return env


def address_lists(env: Dict[str, str], hosts: Sequence[str]) -> Dict[str, str]:
    """The lists of a worker's environment, taken out of ENV (every AREAL_ADDRS_<ROLE>), with AREAL_NODE_HOSTS: the
    supervisor sets them in each of its processes' environment as lists.py's rule says (long ones in files)."""
    lists = {name: env.pop(name) for name in [n for n in env if n.startswith("AREAL_ADDRS_")]}
    lists[NODE_HOSTS] = ",".join(hosts)
    return lists


def fork_env(plan: Dict[str, Any], worker: Dict[str, Any], role: str, index: int, parent_env: Dict[str, str],
             hosts: Sequence[str]) -> Tuple[Dict[str, str], FrozenSet[str]]:
    """A forked child's own variables (over what it inherits from its worker), and the parent's role-scoped
    variables it must not inherit."""
    processes = _processes(plan)
    env = _identity(plan, role, index, int(worker["node"]), hosts, processes)
    own = next((f for f in worker.get("forks") or [] if f["role"] == role), None)
    env["AREAL_PORTS"] = ",".join(str(p) for p in (own or {}).get("ports") or [])
    for key in INHERITED:
        env.pop(key)
    env.update(plan["roles"][role].get("env") or {})
    unset = frozenset(k for k in parent_env if k in ROLE_SCOPED and k not in env)
    return env, unset


def worker_argv(plan: Dict[str, Any], role: str, index: int, ports: Sequence[int]) -> List[str]:
    """The role's command (its argv, never run by a shell) plus `--port <first port>` when it has ports, then, for
    a role with `upstream: areal`, the arguments upstream AReaL's LocalScheduler passes its RPC servers (a driver
    with `upstream: areal` is run through run_trainer_argv instead)."""
    spec = plan["roles"][role]
    argv = list(spec["argv"]) + (["--port", str(ports[0])] if ports else [])
    if spec.get("upstream") == "areal" and spec["kind"] != "driver":
        return argv + upstream_args(plan, role, index)
    return argv


def upstream_args(plan: Dict[str, Any], role: str, index: int) -> List[str]:
    """What areal 1.0.4's LocalScheduler.create_workers appends after `--port P0`, in its order (docs/upstream-areal.md);
    names and the name service are the `areal` block's (the training config's), fileroot the experiment's."""
    areal = plan["areal"]
    resolve = areal["name_resolve"]
    return ["--experiment-name", areal["experiment_name"], "--trial-name", areal["trial_name"], "--role", role,
            "--worker-index", str(index), "--name-resolve-type", resolve["type"],
            "--nfs-record-root", resolve["nfs_record_root"], "--etcd3-addr", resolve["etcd3_addr"],
            "--fileroot", plan["fileroot"]]


def run_trainer_argv(argv: List[str], bundle: str) -> List[str]:
    """A driver with `upstream: areal`: `python SCRIPT|-m MODULE ARGS` -> `python agent.pyz run-trainer SCRIPT|-m
    MODULE ARGS`, the same interpreter running the unchanged script with upstream's trainers on the planned
    scheduler (upstream/run_trainer.py, shipped in agent.pyz beside the agent)."""
    return [argv[0], bundle, "run-trainer"] + argv[1:]


def own_bundle() -> str:
    """The agent.pyz this agent runs from (the planned scheduler travels in it), or the folder it was unpacked
    into (the local runner's)."""
    bundle = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not (os.path.isfile(bundle) or os.path.isfile(os.path.join(bundle, "__main__.py"))):
        raise PlanError("a driver with upstream: areal is started by an agent running from agent.pyz, "
                        "not from %s" % bundle)
    return bundle


def readiness(plan: Dict[str, Any], role: str, ports: Sequence[int]) -> Optional[int]:
    """The port whose GET /health must answer 200 before the process counts as ready; None: running is ready."""
    return int(ports[0]) if ports and plan["roles"][role].get("readiness", "http") == "http" else None
