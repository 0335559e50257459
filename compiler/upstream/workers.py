"""The planned workers as upstream sees them: plan.json, node hosts, upstream's RPC-server arguments, agent calls.

Stdlib only (no `areal` import), so it can be read and tested anywhere; areal_scheduler.py builds on it."""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass

try:  # inside agent.pyz the agent is the sibling package areal_agent; in the source tree, areal_compiler.agent
    from areal_agent.plan import PlanError, on_this_host, read_plan_bytes
    from areal_agent.plan import node_hosts as agent_node_hosts
except ImportError:
    from areal_compiler.agent.plan import PlanError, on_this_host, read_plan_bytes
    from areal_compiler.agent.plan import node_hosts as agent_node_hosts

PLAN_ENV, HOSTS_ENV = "AREAL_PLAN_FILE", "AREAL_NODE_HOSTS"
TOKEN_FILE_ENV, TOKEN_ENV = "AREAL_AGENT_TOKEN_FILE", "AREAL_AGENT_TOKEN"


class PlanMismatch(Exception):
    """The controller asked for something the compiled plan does not have; the message names the setting."""


@dataclass(frozen=True)
class Planned:
    """One process the controller can use: a planned worker, a declared fork, or one multi-node instance."""

    role: str
    index: int
    host: str
    ports: tuple
    devices: tuple
    agent: str  # its agent's URL (a fork's: its parent worker's agent)


def load_plan(path: str | None = None) -> dict:
    path = path or os.environ.get(PLAN_ENV)
    if not path:
        raise PlanMismatch(f"{PLAN_ENV} is not set: the driver needs the compiled plan.json")
    plan = json.loads(read_plan_bytes(path))
    return on_this_host(plan, node_hosts(plan))  # logical nodes sharing a host: their ports (and devices) apart


def node_hosts(plan: dict, hosts: str | None = None) -> list[str]:
    """Addresses of the logical nodes as the agent reads them (HOSTS, else AREAL_NODE_HOSTS or, for a long list,
    the file AREAL_NODE_HOSTS_FILE names: docs/plan-contract.md); 127.0.0.1 for all when none is given."""
    try:
        found = agent_node_hosts(plan, None if hosts is None else {HOSTS_ENV: hosts})
    except PlanError as exc:
        raise PlanMismatch(str(exc)) from None
    if len(found) < int(plan["nodes"]):
        raise PlanMismatch(f"{HOSTS_ENV} names {len(found)} node(s) but the plan has {plan['nodes']}")
    return found


def planned_processes(plan: dict, role: str, hosts: list[str]) -> list[Planned]:
    """The processes upstream's controller sees for `role`, in index order. A multi-node inference instance is one
    process (its first node's worker), as upstream's rollout controller asks for one worker per instance."""
    step = _step(plan["roles"][role])
    out = []
    for w in plan["workers"]:
        agent = f"http://{hosts[w['node']]}:{w['agent_port']}"
        if w["role"] == role and w["index"] % step == 0:
            out.append(Planned(role, w["index"] // step, hosts[w["node"]], tuple(w["ports"]), tuple(w["devices"]),
                               agent))
        for fork in w.get("forks") or []:
            if fork["role"] == role:
                out.append(Planned(role, fork["index"], hosts[w["node"]], tuple(fork["ports"]),
                                   tuple(w["devices"]), agent))
    return sorted(out, key=lambda p: p.index)


def _step(spec: dict) -> int:
    """Planned workers per controller worker: the nodes of one inference instance, else 1."""
    return int(spec.get("instance_nodes") or 1) if spec["kind"] == "inference" else 1


def check_request(plan: dict, role: str, replicas: int, gpu: int | None, port_count: int | None,
                  colocate_with: str | None, fork: bool) -> None:
    """Fail with the experiment setting to change when the controller's request differs from the plan."""
    roles = plan["roles"]
    if role not in roles:
        raise PlanMismatch(f"the controller asks for role `{role}`, which the compiled experiment does not have "
                           f"(roles: {', '.join(sorted(roles))}): add roles.{role} to the experiment")
    spec = roles[role]
    if (spec.get("colocated_with") or None) != colocate_with or (colocate_with and bool(spec["fork"]) != fork):
        want = f"{{type: colocation, target: {colocate_with}, fork: {str(fork).lower()}}}" if colocate_with \
            else "{type: separation}"
        raise PlanMismatch(f"the controller schedules role `{role}` as {want}; set "
                           f"roles.{role}.scheduling_strategy to that in the experiment")
    step = _step(spec)
    owner = roles[colocate_with] if colocate_with and not fork else spec  # fork: false runs in the target's workers
    planned = int(owner["workers"]) // _step(owner)
    if replicas != planned:
        raise PlanMismatch(f"the controller asks for {replicas} worker(s) of role `{role}` but the plan has "
                           f"{planned}: make roles.{role}.backend (or replicas) give {replicas}")
    per_worker = int(spec["devices_per_worker"]) * step
    if gpu is not None and not colocate_with and gpu != per_worker:
        raise PlanMismatch(f"the controller asks for {gpu} device(s) per worker of role `{role}` but the plan "
                           f"gives {per_worker}: change roles.{role}.backend (or scheduling_spec.gpu)")
    if port_count is not None and port_count > int(spec["port_count"]):
        raise PlanMismatch(f"the controller asks for {port_count} ports per worker of role `{role}` but the plan "
                           f"gives {spec['port_count']}: set roles.{role}.scheduling_spec.port_count")


def fork_argv(module: str, port: int, areal: dict, fileroot: str, role: str, index: int, python: str) -> list[str]:
    """The raw_cmd upstream's LocalScheduler._fork_single_worker sends for a fork (areal 1.0.4, in its order):
    --host and --port first, the name-service flags only when set."""
    resolve = areal["name_resolve"]
    argv = [python, "-m", module, "--host", "0.0.0.0", "--port", str(port), "--experiment-name",
            areal["experiment_name"], "--trial-name", areal["trial_name"], "--role", role, "--worker-index", str(index)]
    for flag, value in (("--name-resolve-type", resolve["type"]), ("--nfs-record-root", resolve["nfs_record_root"]),
                        ("--etcd3-addr", resolve["etcd3_addr"]), ("--fileroot", fileroot)):
        if value:
            argv += [flag, str(value)]
    return argv


def check_config(plan: dict, config) -> None:
    """The training config the controller reads must name what the workers were told (the plan's `areal` block
    and fileroot); otherwise they would register and write where the controller never looks."""
    areal, cluster = plan["areal"], config.cluster
    pairs = [("experiment_name", config.experiment_name, areal["experiment_name"], "areal.experiment_name"),
             ("trial_name", config.trial_name, areal["trial_name"], "areal.trial_name"),
             ("cluster.fileroot", os.path.normpath(cluster.fileroot), os.path.normpath(plan["fileroot"]), "fileroot")]
    pairs += [(f"cluster.name_resolve.{key}", getattr(cluster.name_resolve, key), value, f"areal.name_resolve.{key}")
              for key, value in areal["name_resolve"].items()]
    for setting, theirs, ours, key in pairs:
        if theirs != ours:
            raise PlanMismatch(f"the training config's {setting} is {theirs!r} but the compiled experiment's {key} "
                               f"is {ours!r}: make them the same")


def agent_token() -> str | None:
    path = os.environ.get(TOKEN_FILE_ENV)
    if path:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    return os.environ.get(TOKEN_ENV) or None


def agent_call(url: str, path: str, body: dict, token: str | None, timeout: float = 30.0) -> dict:
    """POST JSON to an agent with the run's bearer token; raises PlanMismatch with the agent's error."""
    request = urllib.request.Request(url + path, data=json.dumps(body).encode("utf-8"), method="POST",
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        raise PlanMismatch(f"agent {url}{path} answered {exc.code}: {detail}") from None
