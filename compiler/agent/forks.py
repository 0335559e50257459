"""Fork orchestration: one new ROLE process beside every worker of a target role, all or nothing.

Called by cli.py `fork` and by in-process callers through fork_workers(); talks to agents with client.py."""
from __future__ import annotations

import os
import shlex
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional

from .client import AgentClient, AgentError
from .plan import PlanError, http_url, node_host, node_hosts, workers_of_role
from .state import atomic_write_json


class ForkError(Exception):
    """Some forks failed (and every fork that had succeeded was killed again)."""

    def __init__(self, role: str, target: str, failures: Dict[int, str]) -> None:
        self.role, self.target, self.failures = role, target, dict(failures)
        details = "; ".join("%s/%d: %s" % (target, i, failures[i]) for i in sorted(failures))
        super().__init__("forking %s onto %s failed on worker index(es) %s: %s"
                         % (role, target, ", ".join(str(i) for i in sorted(failures)), details))


def _template(plan: Dict[str, Any], role: str, command: Optional[str]) -> Dict[str, Any]:
    """ROLE's command (--command, else the one the plan declares), its env_vars and how many ports it gets."""
    spec = (plan.get("roles") or {}).get(role)
    if command is not None:
        argv = shlex.split(command)  # tokenizing only: nothing ever runs through a shell
        if not argv:
            raise PlanError("--command is empty")
    elif spec is None:
        raise PlanError("the plan declares no command for role %r; pass --command" % role)
    else:
        argv = list(spec["argv"])
    return {"argv": argv, "env": dict((spec or {}).get("env") or {}),
            "port_count": int((spec or {}).get("port_count") or 0)}


def _wait_healthy(client: AgentClient, role: str, index: int, has_ports: bool, timeout: float,
                  poll: float) -> None:
    """Healthy = the agent reports the child alive and, when it was given ports, accepting connections on its
    first port (the agent answers POST /forked/wait as soon as it is); a child without ports must also still be
    alive `poll` seconds after the fork."""
    started = time.monotonic()
    while True:
        waited = time.monotonic() - started
        if has_ports:
            entry = client.wait_forked(role, index, max(0.0, min(timeout - waited, 5.0)))
        else:
            time.sleep(max(0.0, poll - waited))
            entry = next((e for e in client.forked() if e["role"] == role and e["worker_index"] == index), None)
        if entry is None:
            raise RuntimeError("the agent no longer knows %s/%d" % (role, index))
        if not entry["alive"]:
            raise RuntimeError("the forked process exited with code %s" % entry["exit_code"])
        if entry["listening"] or not has_ports:
            return
        if time.monotonic() - started >= timeout:
            raise RuntimeError("not healthy after %.1fs" % timeout)


def _fork_one(worker: Dict[str, Any], role: str, template: Dict[str, Any], hosts: List[str], token: str,
              timeout: float, poll: float) -> Dict[str, Any]:
    index = int(worker["index"])
    url = http_url(node_host(hosts, int(worker.get("node", 0))), int(worker["agent_port"]))
    client = AgentClient(url, token)
    try:
        count = template["port_count"]
        ports = client.alloc_ports(count)["ports"] if count else []
        argv = template["argv"] + (["--port", str(ports[0])] if ports else [])
        reply = client.fork(role, index, argv, template["env"], ports)
        try:
            _wait_healthy(client, role, index, bool(ports), timeout, poll)
        except Exception:
            _kill_quietly(client, role, index)  # forked but never healthy: it must not outlive the failure
            raise
        return {"role": role, "worker_index": index, "host": reply["host"], "pid": reply["pid"],
                "ports": ports, "agent_url": url}
    finally:
        client.close()


def _kill_quietly(client: AgentClient, role: str, index: int) -> Optional[str]:
    try:
        client.kill_forked_worker(role, index)
    except AgentError as exc:
        if exc.status != 404:
            return str(exc)
    return None


def _rollback(plan: Dict[str, Any], target: str, role: str, indices: List[int], hosts: List[str],
              token: str) -> None:
    """Kill every successful fork through its own parent agent, by its real worker index."""
    by_index = {int(w["index"]): w for w in workers_of_role(plan, target)}

    def kill(index: int) -> Optional[str]:
        worker = by_index[index]
        client = AgentClient(http_url(node_host(hosts, int(worker.get("node", 0))), int(worker["agent_port"])), token)
        try:
            return _kill_quietly(client, role, index)
        finally:
            client.close()
    with ThreadPoolExecutor(max(1, len(indices))) as pool:
        list(pool.map(kill, indices))


def fork_workers(plan: Dict[str, Any], role: str, target: str, token: str, command: Optional[str] = None,
                 run_dir: Optional[str] = None, environ: Optional[Dict[str, str]] = None,
                 timeout: float = 60.0, poll: float = 0.5) -> List[Dict[str, Any]]:
    """fork(role, target, command): alloc ports, POST /fork, wait healthy, concurrently on every target worker.

    All or nothing: on any failure every fork that succeeded is killed and ForkError names the failed indices.
    With run_dir, the result is recorded in DIR/forks/<role>.json."""
    targets = workers_of_role(plan, target)
    if not targets:
        raise PlanError("the plan has no workers of role %r" % target)
    hosts = node_hosts(plan, environ)
    template = _template(plan, role, command)
    with ThreadPoolExecutor(len(targets)) as pool:
        futures = {int(w["index"]): pool.submit(_fork_one, w, role, template, hosts, token, timeout, poll)
                   for w in targets}
    results, failures = {}, {}
    for index, future in sorted(futures.items()):
        try:
            results[index] = future.result()
        except Exception as exc:
            failures[index] = str(exc) or type(exc).__name__
    if failures:
        _rollback(plan, target, role, sorted(results), hosts, token)
        raise ForkError(role, target, failures)
    forked = [results[i] for i in sorted(results)]
    if run_dir:
        os.makedirs(os.path.join(run_dir, "forks"), exist_ok=True)
        atomic_write_json(os.path.join(run_dir, "forks", "%s.json" % role),
                          {"role": role, "target": target, "forked": forked})
    return forked
