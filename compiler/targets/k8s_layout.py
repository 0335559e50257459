"""Where a plan's processes go on Kubernetes: components (one pod group each), object names, pod DNS names.

Called by targets/kubernetes.py (check and render) and k8s_objects.py; pure functions of the plan."""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

from areal_compiler.agent.lists import NODE_HOSTS, file_variable, kept
from areal_compiler.plan import DRIVER, Plan
from areal_compiler.targets.slurm import _components

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
POD_SUFFIX = 6  # "-" + the 5 random characters Kubernetes appends to a Job's pod names
REVISION_SUFFIX = 11  # "-" + the 10-character controller-revision-hash a StatefulSet adds to its name in a label
FILES_DIR, TOKEN_DIR = "/etc/areal", "/var/run/areal-token"
HOSTS_FILE = "node-hosts"  # AREAL_NODE_HOSTS in ConfigMaps when the agent's rule says a file (pieces: node-hosts.N)


@dataclass(frozen=True)
class Component:
    """Roles sharing logical nodes: one JobSet replicated Job (or one StatefulSet); pod k = logical node nodes[k]."""

    name: str
    roles: tuple[str, ...]
    nodes: tuple[int, ...]
    object_name: str  # the Job's (JobSet: <jobset>-<component>-0) or the StatefulSet's name

    def pod(self, k: int) -> str:
        """Pod k's hostname (JobSet: <jobset>-<job>-<jobIndex>-<podIndex>; StatefulSet: <name>-<ordinal>)."""
        return f"{self.object_name}-{k}"


@dataclass(frozen=True)
class Layout:
    base: str  # kubernetes.name, or <experiment>-<trial>
    namespace: str
    jobset: bool
    components: tuple[Component, ...]
    driver: Component | None
    hosts: tuple[str, ...]  # AREAL_NODE_HOSTS: the pod DNS name of every logical node, in order
    run_dir: str

    @property
    def all_components(self) -> tuple[Component, ...]:
        return self.components + ((self.driver,) if self.driver else ())

    def labels(self, component: str | None = None) -> dict[str, str]:
        out = {"app.kubernetes.io/name": "areal", "app.kubernetes.io/instance": self.base,
               "app.kubernetes.io/managed-by": "areal-compile"}
        return {**out, "areal/component": component} if component else out

    @property
    def token_secret(self) -> str:
        return f"{self.base}-agent-token"


def settings(plan: Plan) -> dict:
    return plan.targets.get("kubernetes") or {}


def base_name(plan: Plan) -> str:
    return settings(plan).get("name") or f"{plan.experiment_name}-{plan.trial_name}"


def layout(plan: Plan) -> Layout:
    """Components ordered by first logical node, the driver on its own; names as Kubernetes will spell them."""
    conf, base = settings(plan), base_name(plan)
    jobset = conf.get("workload", "jobset") == "jobset"
    roles = [n for n, r in plan.roles.items() if r.colocated_with is None and r.workers > 0 and n != DRIVER]
    groups = _components(plan, roles) if roles else []
    components = tuple(_component(base, "-".join(names), tuple(names),
                                  tuple(sorted({n for r in names for n in plan.roles[r].nodes})), jobset)
                       for names in groups)
    driver = _component(base, DRIVER, (DRIVER,), (), jobset) if DRIVER in plan.roles else None
    where = {node: f"{c.pod(k)}.{_subdomain(base, c, jobset)}" for c in components for k, node in enumerate(c.nodes)}
    hosts = tuple(where.get(n, "unused") for n in range(plan.nodes))  # a node without workers gets no pod
    run_dir = f"{plan.fileroot.rstrip('/') or ''}/{plan.experiment_name}/{plan.trial_name}/kubernetes"
    return Layout(base, conf.get("namespace", "default"), jobset, components, driver, hosts, run_dir)


def _component(base: str, name: str, roles: tuple, nodes: tuple, jobset: bool) -> Component:
    return Component(name, roles, nodes, f"{base}-{name}-0" if jobset else f"{base}-{name}")


def _subdomain(base: str, component: Component, jobset: bool) -> str:
    """JobSet: one headless Service named after the JobSet; StatefulSets: one per StatefulSet (its serviceName)."""
    return base if jobset else component.object_name


def driver_host(lay: Layout) -> str | None:
    if lay.driver is None:
        return None
    return f"{lay.driver.pod(0)}.{_subdomain(lay.base, lay.driver, lay.jobset)}"


def node_hosts(lay: Layout) -> tuple[dict, bytes]:
    """The pods' AREAL_NODE_HOSTS entry and b"", or, when the agent's rule (agent/lists.py) puts the list in a file
    (over 16 KiB: about 300 pod names), an AREAL_NODE_HOSTS_FILE entry naming FILES_DIR/node-hosts and that file's
    bytes, kept once in ConfigMaps: in every pod's env, 8,192 nodes' names would be 3 GB in etcd."""
    text = ",".join(lay.hosts)
    if kept({NODE_HOSTS: len(text.encode("utf-8"))}):
        return {"name": NODE_HOSTS, "value": text}, b""
    return {"name": file_variable(NODE_HOSTS), "value": f"{FILES_DIR}/{HOSTS_FILE}"}, text.encode("utf-8")


def node_list(nodes: tuple[int, ...]) -> str:
    """`agent.pyz node --nodes`: the logical nodes comma-separated; a list over 1 KiB (about 250 nodes) with each
    run of consecutive nodes as FIRST-LAST, so that a pod's command stays small at any size."""
    plain = ",".join(map(str, nodes))
    if len(plain) <= 1024:
        return plain
    runs: list[list[int]] = []
    for n in nodes:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def content_name(base: str, files: dict[str, bytes]) -> str:
    """<base>-<10 hex of the files' sha256>: a changed plan or agent gets a new ConfigMap, never an edited one."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
    return f"{base}-files-{digest.hexdigest()[:10]}"


def longest_names(lay: Layout) -> list[tuple[str, int, str]]:
    """(name as Kubernetes will build it, its limit, what it is) for every generated name that has a limit."""
    out = [(lay.base, 63, "the headless Service and pod subdomain")] if lay.jobset else []
    for c in lay.all_components:
        last = max(len(c.nodes), 1) - 1
        if lay.jobset:
            out.append((f"{c.pod(last)}-xxxxx", 63, f"the pod name of {c.name}, with Kubernetes' suffix"))
        else:
            out.append((f"{c.object_name}-xxxxxxxxxx", 63, f"the controller-revision-hash label of {c.name}"))
    return out


def shortest_fix(lay: Layout, name: str, limit: int) -> int:
    """How long kubernetes.name may be for `name` to fit `limit`."""
    return max(1, len(lay.base) - (len(name) - limit))


def grace_seconds(plan: Plan) -> int:
    """The pod's termination grace: the agents' own grace period to stop their workers, plus a margin."""
    return math.ceil(float(plan.runtime.get("grace_period", 10))) + 15
