"""Reading plan.json for the agent: find a worker, resolve node hosts, read secrets.

Called by supervisor.py, contract.py, policy.py and forks.py. The plan holds no placeholders: every argv item and
env value is used exactly as written."""
from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, List, Optional, Sequence

from .files import read_bytes, read_pieces
from .lists import NODE_HOSTS, file_variable, read_list

MAX_PLAN = 1 << 30  # bytes of plan.json
MAX_SECRET = 64 * 1024  # bytes of one secret file
PLAN_VERSION = 3
DEVICE_FILES = {"CUDA_VISIBLE_DEVICES": re.compile(r"^nvidia[0-9]+$"),  # /dev entries, one per device
                "ASCEND_RT_VISIBLE_DEVICES": re.compile(r"^davinci[0-9]+$")}
DEFAULT_RUNTIME = {
    "heartbeat_interval": 5.0,
    "hung_after": 30.0,
    "grace_period": 10.0,
    "worker_heartbeat": False,
    "fork_commands": "declared",
}


class PlanError(Exception):
    """The plan, the worker choice or a placeholder is unusable: the agent exits 2 with this message."""


def load_plan(path: str, environ: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Read plan.json (UTF-8), check the few fields the agent relies on, and move the ports (and devices) of
    logical nodes that share a host apart (on_this_host; the node addresses from `environ`, default os.environ)."""
    try:
        plan = json.loads(read_plan_bytes(path).decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise PlanError("cannot read plan %s: %s" % (path, exc)) from None
    if not isinstance(plan, dict) or plan.get("plan_version") != PLAN_VERSION:
        raise PlanError("plan %s is not a version-%d plan: recompile it with this areal" % (path, PLAN_VERSION))
    roles = plan.get("roles")
    if not isinstance(plan.get("workers"), list) or not isinstance(roles, dict):
        raise PlanError("plan %s has no 'workers' list or 'roles' map" % path)
    for worker in plan["workers"]:
        if not isinstance(worker, dict) or not isinstance((roles.get(worker.get("role")) or {}).get("argv"), list):
            raise PlanError("plan %s: every worker needs a 'role' whose entry in 'roles' has an 'argv' list" % path)
    for name, role in roles.items():
        problem = command_problem(role.get("argv") if isinstance(role, dict) else None,
                                  role.get("env") if isinstance(role, dict) else None)
        if problem:
            raise PlanError("plan %s: role %s: %s" % (path, name, problem))
    return on_this_host(plan, node_hosts(plan, environ))


def read_plan_bytes(path: str) -> bytes:
    """plan.json's bytes, or the concatenation of its pieces PATH.1 .. PATH.N when the Kubernetes target cut a
    plan.json over the 1 MiB one ConfigMap holds into several."""
    return read_pieces(path, MAX_PLAN)


def host_devices(plan: Dict[str, Any], dev: str = "/dev") -> int:
    """How many devices of the plan's accelerator kind this host has (its /dev entries: nvidiaN, davinciN)."""
    pattern = DEVICE_FILES.get((plan.get("accelerator") or {}).get("visibility_env") or "")
    try:
        return sum(1 for name in os.listdir(dev) if pattern and pattern.match(name))
    except OSError:
        return 0


def devices_apart(plan: Dict[str, Any], sharing: int, dev: str = "/dev") -> bool:
    """Whether this host has a device for each of SHARING logical nodes' (sharing x devices_per_node); if not,
    they use the planned indices and so share devices (`areal run` says so)."""
    per_node = int((plan.get("accelerator") or {}).get("devices_per_node") or 0)
    return host_devices(plan, dev) >= per_node * sharing


def _used_ports(plan: Dict[str, Any]) -> List[int]:
    """How many ports each logical node's processes use (its highest planned port - base_port + 1)."""
    base, used = int((plan.get("runtime") or {}).get("base_port") or 0), [0] * int(plan.get("nodes") or 1)
    for w in plan["workers"]:
        ports = [int(w.get("agent_port") or base)] + [int(p) for p in w.get("ports") or []]
        ports += [int(p) for f in w.get("forks") or [] for p in f.get("ports") or []]
        node = int(w.get("node") or 0)
        used[node] = max(used[node], max(ports) - base + 1)
    return used


def on_this_host(plan: Dict[str, Any], hosts: Sequence[str], dev: str = "/dev") -> Dict[str, Any]:
    """The plan as its hosts run it. Logical nodes at one address (HOSTS, from AREAL_NODE_HOSTS; all of them when
    it is unset, as on the local target; two slurmd on one machine) share that host: each node's ports (its
    workers', forks' and agents') move past those the nodes before it there use, and, when the host has a device
    for each of them, its devices to k x devices_per_node + d, k its place among them. A node alone at its
    address keeps the plan's numbers."""
    nodes = int(plan.get("nodes") or 1)
    keys = [hosts[n] if n < len(hosts) else (n,) for n in range(nodes)]  # a node without an address: alone
    if len(set(keys)) == nodes:
        return plan
    used, taken, place, shift = _used_ports(plan), {}, [0] * nodes, [0] * nodes
    for n, key in enumerate(keys):
        shift[n], place[n] = taken.get(key, (0, 0))
        taken[key] = (shift[n] + used[n], place[n] + 1)
    per_node = int((plan.get("accelerator") or {}).get("devices_per_node") or 0)
    apart = per_node if devices_apart(plan, max(count for _, count in taken.values()), dev) else 0
    for worker in plan["workers"]:
        node = int(worker.get("node") or 0)
        worker["agent_port"] = int(worker.get("agent_port") or 0) + shift[node]
        worker["ports"] = [int(p) + shift[node] for p in worker.get("ports") or []]
        worker["devices"] = [int(d) + place[node] * apart for d in worker.get("devices") or []]
        for fork in worker.get("forks") or []:
            fork["ports"] = [int(p) + shift[node] for p in fork.get("ports") or []]
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
    """Address of every logical node: $AREAL_NODE_HOSTS, or the file $AREAL_NODE_HOSTS_FILE names (lists.py),
    split on commas; 127.0.0.1 for all when neither is set."""
    environ = os.environ if environ is None else environ
    count = int(plan.get("nodes") or 1)
    try:
        raw = (read_list(environ, NODE_HOSTS) or "").strip()
    except (OSError, ValueError) as exc:
        raise PlanError("cannot read %s %s: %s" % (file_variable(NODE_HOSTS), environ.get(file_variable(NODE_HOSTS)),
                                                   reason(exc))) from None
    if not raw:
        return ["127.0.0.1"] * count
    return [item.strip() for item in raw.split(",")]


def node_host(hosts: Sequence[str], node: int) -> str:
    if not 0 <= node < len(hosts):
        raise PlanError("node %d has no address in AREAL_NODE_HOSTS (%d given)" % (node, len(hosts)))
    return hosts[node]


def http_url(host: str, port: int) -> str:
    shown = "[%s]" % host if ":" in host else host
    return "http://%s:%d" % (shown, port)


def reason(exc: Exception) -> str:
    """Why a file could not be read, in words that never quote its content."""
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return "not UTF-8" if isinstance(exc, UnicodeDecodeError) else str(exc)


def secret_files(plan: Dict[str, Any], environ: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Environment variable -> the file its value is read from (the plan's `secrets`), except the variables the
    target already put in the agent's environment and names in AREAL_SECRETS_IN_ENV (Kubernetes secretKeyRef)."""
    given = set((environ or {}).get("AREAL_SECRETS_IN_ENV", "").split(","))
    return {name: str(ref["file"]) for name, ref in (plan.get("secrets") or {}).items()
            if ref.get("file") and not (name in given and name in (environ or {}))}


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
            raise PlanError("cannot read secret %s from %s: %s" % (name, secret_files[name], reason(exc))) from None
        values[name] = value[:-1] if value.endswith("\n") else value
    return values
