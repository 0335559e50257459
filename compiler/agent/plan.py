"""Reading plan.json for the agent: find a worker, resolve node hosts, fill `{port<i>}`/`{host<n>}` placeholders.

Called by supervisor.py (its own worker and start-up forks), policy.py (declared commands) and forks.py."""
from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, List, Optional, Sequence

from .files import read_bytes

MAX_PLAN = 1 << 30  # bytes of plan.json
MAX_SECRET = 64 * 1024  # bytes of one secret file
PLACEHOLDER = re.compile(r"\{(port|host)(\d+)\}")
DEFAULT_RUNTIME = {
    "heartbeat_interval": 5.0,
    "hung_after": 30.0,
    "grace_period": 10.0,
    "worker_heartbeat": False,
    "fork_commands": "declared",
}


class PlanError(Exception):
    """The plan, the worker choice or a placeholder is unusable: the agent exits 2 with this message."""


def load_plan(path: str) -> Dict[str, Any]:
    """Read plan.json (UTF-8) and check the few fields the agent relies on."""
    try:
        plan = json.loads(read_bytes(path, MAX_PLAN).decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise PlanError("cannot read plan %s: %s" % (path, exc)) from None
    if not isinstance(plan, dict) or not isinstance(plan.get("workers"), list):
        raise PlanError("plan %s has no 'workers' list" % path)
    for worker in plan["workers"]:
        if not isinstance(worker, dict) or not isinstance(worker.get("argv"), list):
            raise PlanError("plan %s: every worker needs 'role', 'index' and an 'argv' list" % path)
        for entry in [worker] + [f for f in worker.get("forks") or [] if isinstance(f, dict)]:
            problem = command_problem(entry.get("argv"), entry.get("env"))
            if problem:
                raise PlanError("plan %s: %s/%s: %s" % (path, entry.get("role"), entry.get("index", "fork"), problem))
    return plan


def command_problem(argv: Any, env: Any) -> Optional[str]:
    """Why argv/env cannot be passed to a program (argv and the environment are NUL-terminated), or None."""
    if not isinstance(argv, list) or not all(isinstance(item, str) for item in argv):
        return "argv must be a list of strings"
    if env is not None and not (isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                              for k, v in env.items())):
        return "env must map strings to strings"
    if any("\0" in item for item in argv) or any("\0" in k + v for k, v in (env or {}).items()):
        return "a NUL character cannot be passed in argv or the environment"
    if any(not k or "=" in k for k in env or {}):
        return "an environment variable name must be non-empty and hold no '='"
    return None


def runtime_settings(plan: Dict[str, Any]) -> Dict[str, Any]:
    """The plan's runtime block over the documented defaults."""
    merged = dict(DEFAULT_RUNTIME)
    merged.update(plan.get("runtime") or {})
    if merged["fork_commands"] not in ("declared", "any"):
        raise PlanError("runtime.fork_commands must be 'declared' or 'any', not %r" % merged["fork_commands"])
    return merged


def parse_worker_spec(spec: str, environ: Optional[Dict[str, str]] = None) -> tuple:
    """'actor/3' -> ('actor', 3); 'actor/@SLURM_PROCID' takes the index from that environment variable
    (a launcher such as srun starts every task with the same argv and tells each its rank in the env)."""
    role, sep, index = spec.rpartition("/")
    if sep and index.startswith("@") and len(index) > 1:
        environ = os.environ if environ is None else environ
        name, index = index[1:], environ.get(index[1:], "")
        if not index.isdigit():
            raise PlanError("--worker %s: environment variable %s must hold a worker index, got %r"
                            % (spec, name, index))
    if not sep or not role or not index.isdigit():
        raise PlanError("--worker must look like ROLE/INDEX or ROLE/@ENVVAR, got %r" % spec)
    return role, int(index)


def allocated_devices(plan: Dict[str, Any], worker: Dict[str, Any], allocated: str) -> str:
    """The worker's visibility value on devices a scheduler allocated (AREAL_ALLOCATED_DEVICES, e.g. Slurm's
    CUDA_VISIBLE_DEVICES of the step): planned device d -> allocated[position of d among the devices of every
    worker of the same role on the same node]."""
    given = [item.strip() for item in allocated.split(",") if item.strip()]
    mine = [int(d) for d in worker.get("devices") or []]
    role_devices = sorted({int(d) for w in plan["workers"] if w.get("role") == worker.get("role")
                           and w.get("node") == worker.get("node") for d in w.get("devices") or []})
    if len(given) < len(role_devices):
        raise PlanError("AREAL_ALLOCATED_DEVICES=%r has %d device(s) but role %s plans %d on node %s"
                        % (allocated, len(given), worker.get("role"), len(role_devices), worker.get("node")))
    return ",".join(given[role_devices.index(d)] for d in mine)


def find_worker(plan: Dict[str, Any], role: str, index: int) -> Dict[str, Any]:
    for worker in plan["workers"]:
        if worker.get("role") == role and worker.get("index") == index:
            return worker
    raise PlanError("the plan has no worker %s/%d" % (role, index))


def workers_of_role(plan: Dict[str, Any], role: str) -> List[Dict[str, Any]]:
    return sorted((w for w in plan["workers"] if w.get("role") == role), key=lambda w: w["index"])


def node_hosts(plan: Dict[str, Any], environ: Optional[Dict[str, str]] = None) -> List[str]:
    """Address of every logical node: $AREAL_NODE_HOSTS split on commas, else 127.0.0.1 for all."""
    environ = os.environ if environ is None else environ
    count = int(plan.get("nodes") or 1)
    raw = environ.get("AREAL_NODE_HOSTS", "").strip()
    if not raw:
        return ["127.0.0.1"] * count
    return [item.strip() for item in raw.split(",")]


def node_host(hosts: Sequence[str], node: int) -> str:
    if not 0 <= node < len(hosts):
        raise PlanError("node %d has no address in AREAL_NODE_HOSTS (%d given)" % (node, len(hosts)))
    return hosts[node]


def fill(text: str, ports: Sequence[int], hosts: Sequence[str]) -> str:
    """Replace exact `{port<i>}` / `{host<n>}` tokens; an unknown port or node is a PlanError."""
    def replace(match: "re.Match[str]") -> str:
        kind, number = match.group(1), int(match.group(2))
        if kind == "port":
            if number >= len(ports):
                raise PlanError("%s names port %d but only %d port(s) exist" % (match.group(0), number, len(ports)))
            return str(ports[number])
        return node_host(hosts, number)
    return PLACEHOLDER.sub(replace, text)


def fill_argv(argv: Sequence[Any], ports: Sequence[int], hosts: Sequence[str]) -> List[str]:
    return [fill(str(item), ports, hosts) for item in argv]


def fill_env(env: Optional[Dict[str, Any]], ports: Sequence[int], hosts: Sequence[str]) -> Dict[str, str]:
    return {str(key): fill(str(value), ports, hosts) for key, value in (env or {}).items()}


def ports_needed(argv: Sequence[Any], env: Optional[Dict[str, Any]]) -> int:
    """How many ports a command template names: 1 + the highest `{port<i>}` index, 0 when none."""
    texts = [str(item) for item in argv] + [str(value) for value in (env or {}).values()]
    numbers = [int(m.group(2)) for text in texts for m in PLACEHOLDER.finditer(text) if m.group(1) == "port"]
    return max(numbers) + 1 if numbers else 0


def declared_commands(plan: Dict[str, Any], role: str) -> List[Dict[str, Any]]:
    """Every (argv, env) template the plan declares for a role: its workers and every fork entry of it."""
    found = []
    for worker in plan["workers"]:
        if worker.get("role") == role:
            found.append({"argv": list(worker["argv"]), "env": dict(worker.get("env") or {})})
        for entry in worker.get("forks") or []:
            if entry.get("role") == role:
                found.append({"argv": list(entry["argv"]), "env": dict(entry.get("env") or {})})
    return found


def http_url(host: str, port: int) -> str:
    shown = "[%s]" % host if ":" in host else host
    return "http://%s:%d" % (shown, port)


def read_secrets(secret_files: Dict[str, str]) -> Dict[str, str]:
    """Each secret's value from its file (one trailing newline dropped); a missing file is an error naming the
    variable and the path, never the value. The values only ever reach the worker's environment."""
    values = {}
    for name in sorted(secret_files):
        try:
            value = read_bytes(secret_files[name], MAX_SECRET).decode("utf-8")
            if "\0" in value:
                raise ValueError("it holds a NUL byte, which the environment cannot carry")
        except (OSError, ValueError) as exc:  # a device, a FIFO, too large, not UTF-8, a NUL: never the value
            why = exc.strerror if isinstance(exc, OSError) else \
                "not UTF-8" if isinstance(exc, UnicodeDecodeError) else str(exc)
            raise PlanError("cannot read secret %s from %s: %s" % (name, secret_files[name], why)) from None
        values[name] = value[:-1] if value.endswith("\n") else value
    return values
