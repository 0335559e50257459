"""The Kubernetes objects of a plan as plain dicts: the JobSet (or StatefulSets and headless Services), the
ConfigMap carrying plan.json and agent.pyz, the kustomization and the example RBAC for the submitting user.

Called by targets/kubernetes.py (render) and by the tests, which validate every object offline."""
from __future__ import annotations

import base64

from areal_compiler.plan import DRIVER, Plan
from areal_compiler.targets.k8s_check import CONFIGMAP_LIMIT
from areal_compiler.targets.k8s_layout import HOSTS_FILE, Layout, content_name, settings
from areal_compiler.targets.k8s_pods import pod_template

JOBSET_API = "jobset.x-k8s.io/v1alpha2"
KUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PART = CONFIGMAP_LIMIT // 4 * 3  # bytes per piece of a file cut into ConfigMaps: its base64 text fills one


def _meta(lay: Layout, name: str, labels: dict | None = None) -> dict:
    return {"name": name, "namespace": lay.namespace, "labels": labels or lay.labels()}


def configmap(plan: Plan, lay: Layout, plan_json: bytes, agent: bytes, attachments: dict[str, bytes],
              parts: int = 0, hosts: bytes = b"") -> list[dict]:
    """Immutable and named by content: a recompiled plan gets new ConfigMaps, running pods keep theirs. Every key
    is a file in the pods' /etc/areal: the attachments (an imported config, which the driver reads beside
    plan.json), plan.json, agent.pyz; in that order, which kubernetes.render relies on. With PARTS (a plan too
    large for one ConfigMap, whose data Kubernetes caps at 1 MiB), plan.json is cut into that many pieces,
    `plan.json.1` .. `plan.json.N`, each in a ConfigMap of its own (<name>-1 ..) as binaryData; the agent reads
    their concatenation (docs/plan-contract.md). HOSTS (the node addresses, when the agent's rule puts them in a
    file: k8s_layout.node_hosts) follow likewise, `node-hosts.1` .. in the next ConfigMaps."""
    listed = {HOSTS_FILE: hosts} if hosts else {}
    name = content_name(lay.base, {"plan.json": plan_json, "agent.pyz": agent, **attachments, **listed})
    data = {path: blob.decode("utf-8") for path, blob in attachments.items()}
    if not parts:
        data["plan.json"] = plan_json.decode("utf-8")
    files = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(lay, name), "immutable": True,
             "data": data, "binaryData": {"agent.pyz": base64.b64encode(agent).decode("ascii")}}
    host_parts = -(-len(hosts) // PART)
    return [files] + _pieces(lay, name, "plan.json", plan_json, parts, 1) + \
        _pieces(lay, name, HOSTS_FILE, hosts, host_parts, parts + 1)


def _pieces(lay: Layout, name: str, key: str, blob: bytes, count: int, first: int) -> list[dict]:
    """BLOB cut into COUNT pieces of one size (the last shorter), `KEY.1` .. `KEY.COUNT`, each the binaryData of a
    ConfigMap of its own named <name>-<first> onwards."""
    size = -(-len(blob) // count) if count else 0
    return [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(lay, f"{name}-{first + k - 1}"),
             "immutable": True, "binaryData": {f"{key}.{k}": base64.b64encode(
                 blob[(k - 1) * size:k * size]).decode("ascii")}} for k in range(1, count + 1)]


def _workload_labels(plan: Plan, lay: Layout) -> dict:
    queue = settings(plan).get("queue")
    return {**lay.labels(), **({KUEUE_LABEL: queue} if queue else {})}


def jobset(plan: Plan, lay: Layout, files: list[str]) -> dict:
    """One replicated Job per component (Indexed, one pod per logical node) plus the driver's; success = the
    driver succeeded (without a driver: every Job); any failed Job fails the set, restarted max_retries times."""
    jobs = []
    for c in lay.all_components:
        pods = max(len(c.nodes), 1)
        jobs.append({"name": c.name, "replicas": 1, "template": {
            "metadata": {"labels": lay.labels(c.name)},
            "spec": {"completionMode": "Indexed", "parallelism": pods, "completions": pods, "backoffLimit": 0,
                     "template": pod_template(plan, lay, c, files)}}})
    success = {"operator": "All", "targetReplicatedJobs": [DRIVER]} if lay.driver else {"operator": "All"}
    spec = {"network": {"enableDNSHostnames": True, "subdomain": lay.base, "publishNotReadyAddresses": True},
            "successPolicy": success,
            "failurePolicy": {"maxRestarts": int(settings(plan).get("max_retries", 0)), "restartStrategy": "Recreate"},
            "replicatedJobs": jobs}
    return {"apiVersion": JOBSET_API, "kind": "JobSet", "metadata": _meta(lay, lay.base, _workload_labels(plan, lay)),
            "spec": spec}


def statefulsets(plan: Plan, lay: Layout, files: list[str]) -> list[dict]:
    """Per component a headless Service and a StatefulSet (ordinal = pod index, all pods started together).
    Their pods restart forever: for services that never finish, not for a training run."""
    out = []
    for c in lay.components:
        selector = lay.labels(c.name)
        out.append({"apiVersion": "v1", "kind": "Service", "metadata": _meta(lay, c.object_name, selector),
                    "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": selector}})
        out.append({"apiVersion": "apps/v1", "kind": "StatefulSet",
                    "metadata": _meta(lay, c.object_name, {**_workload_labels(plan, lay), "areal/component": c.name}),
                    "spec": {"serviceName": c.object_name, "replicas": len(c.nodes), "podManagementPolicy": "Parallel",
                             "selector": {"matchLabels": selector}, "template": pod_template(plan, lay, c, files)}})
    return out


def kustomization(files: list[str]) -> dict:
    """Lets `kubectl apply -k`, Argo CD and Flux apply exactly the manifests (not plan.json or the RBAC example)."""
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": files}


def rbac(lay: Layout) -> list[dict]:
    """What `areal submit/status/logs/stop` need in the namespace for this workload, and nothing more (the
    verbs runs/kubernetes.py uses); an example for an administrator to adapt."""
    crud = ["create", "list", "delete"]
    if lay.jobset:
        workload = [{"apiGroups": ["jobset.x-k8s.io"], "resources": ["jobsets"], "verbs": ["create", "get", "list",
                                                                                            "delete"]}]
    else:
        workload = [{"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["create", "get", "list",
                                                                                    "delete"]},
                    {"apiGroups": [""], "resources": ["services"], "verbs": crud}]
    rules = workload + [
        {"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": crud},
        {"apiGroups": [""], "resources": ["pods", "events"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    ]
    name = f"{lay.base}-submitter"
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": _meta(lay, name),
            "rules": rules}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": _meta(lay, name),
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "REPLACE-WITH-USER"}]}
    return [role, binding]
