"""The pod template of one component (or of the driver): one container running that pod's agents.

Called by k8s_objects.py. Requests = limits (devices must be; CPU and memory too, for Guaranteed QoS); every value
Kubernetes would expand (`$(VAR)` in command and env) is escaped, so what the compiler writes is what runs."""
from __future__ import annotations

from areal_compiler.plan import DRIVER, Plan
from areal_compiler.targets.k8s_layout import (FILES_DIR, TOKEN_DIR, Component, Layout, driver_host, grace_seconds,
                                               node_hosts, node_list, settings)

INDEX_LABEL = "apps.kubernetes.io/pod-index"  # StatefulSet pods carry their ordinal (Kubernetes 1.28+)


def literal(text: str) -> str:
    """A value Kubernetes passes on verbatim: `$(NAME)` would be expanded, `$$(NAME)` becomes `$(NAME)`."""
    return str(text).replace("$(", "$$(")


def pod_needs(plan: Plan, component: Component) -> dict:
    """The most any of the component's nodes needs: CPUs, GB and devices (a pod gets all devices of its node)."""
    per_node = {n: [0, 0, False] for n in component.nodes or (0,)}  # the driver's pod: its worker on node 0
    for w in (w for node in per_node for w in plan.node_workers[node]):
        if w.role in component.roles:
            slot = per_node[w.node]
            for role in [w.role] + [f.role for f in w.forks]:
                slot[0] += plan.roles[role].cpu
                slot[1] += plan.roles[role].mem_gb
            slot[2] = slot[2] or bool(w.devices)
    devices = plan.accelerator.get("devices_per_node", 0) if any(s[2] for s in per_node.values()) else 0
    return {"cpu": max(s[0] for s in per_node.values()), "mem_gb": max(s[1] for s in per_node.values()),
            "devices": devices}


def _command(plan: Plan, lay: Layout, component: Component) -> list[str]:
    base = ["python3", "-I", f"{FILES_DIR}/agent.pyz"]
    if component.name == DRIVER:
        return base + ["supervise", "--plan", f"{FILES_DIR}/plan.json", "--worker", f"{DRIVER}/0",
                       "--run-dir", literal(lay.run_dir)]
    index_env = "JOB_COMPLETION_INDEX" if lay.jobset else "AREAL_POD_INDEX"
    return base + ["node", "--plan", f"{FILES_DIR}/plan.json", "--nodes", node_list(component.nodes),
                   "--index-env", index_env, "--run-dir", literal(lay.run_dir)]


def _env(plan: Plan, lay: Layout, component: Component) -> list[dict]:
    env = [node_hosts(lay)[0],
           {"name": "AREAL_AGENT_BIND", "value": "0.0.0.0"},
           {"name": "AREAL_AGENT_TOKEN_FILE", "value": f"{TOKEN_DIR}/token"}]
    if component.name == DRIVER:  # its own pod, not its logical node's
        env.append({"name": "AREAL_AGENT_HOST", "value": driver_host(lay)})
    if plan.secrets:
        env.append({"name": "AREAL_SECRETS_IN_ENV", "value": ",".join(sorted(plan.secrets))})
    if not lay.jobset:
        index = {"fieldRef": {"fieldPath": f"metadata.labels['{INDEX_LABEL}']"}}
        env.append({"name": "AREAL_POD_INDEX", "valueFrom": index})
    for name in sorted(plan.secrets):
        ref = plan.secrets[name]["kubernetes"]
        env.append({"name": name, "valueFrom": {"secretKeyRef": {"name": ref["name"], "key": ref["key"]}}})
    return env


def _volumes(plan: Plan, lay: Layout, files: list[str], shm_gb: int) -> tuple[list[dict], list[dict]]:
    """FILES: the ConfigMaps whose every key becomes a file in /etc/areal (one, or the first and plan.json's parts)."""
    conf = settings(plan)
    source = {"configMap": {"name": files[0], "defaultMode": 0o444}} if len(files) == 1 else \
        {"projected": {"defaultMode": 0o444, "sources": [{"configMap": {"name": name}} for name in files]}}
    volumes = [{"name": "areal-files", **source},
               {"name": "areal-token", "secret": {"secretName": lay.token_secret, "defaultMode": 0o444}},
               {"name": "fileroot", **({"persistentVolumeClaim": {"claimName": conf["fileroot_claim"]}}
                                       if conf.get("fileroot_claim") else {"emptyDir": {}})}]
    mounts = [{"name": "areal-files", "mountPath": FILES_DIR, "readOnly": True},
              {"name": "areal-token", "mountPath": TOKEN_DIR, "readOnly": True},
              {"name": "fileroot", "mountPath": plan.fileroot}]
    if shm_gb:
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{shm_gb}Gi"}})
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    return volumes, mounts


def _affinity(plan: Plan) -> dict | None:
    labels = settings(plan).get("node_affinity")
    if labels is None:
        labels = plan.accelerator.get("kubernetes_node_labels") or {}
    if not labels:
        return None
    terms = [{"key": key, "operator": "In", "values": list(values)} for key, values in sorted(labels.items())]
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": terms}]}}}


def pod_template(plan: Plan, lay: Layout, component: Component, files: list[str]) -> dict:
    """metadata + spec of the pods of one component; restartPolicy Never for a JobSet, Always for a StatefulSet."""
    conf, need = settings(plan), pod_needs(plan, component)
    shm_gb = 0 if component.name == DRIVER else int(conf.get("shm_gb", 16))
    amounts = {"cpu": str(need["cpu"]), "memory": f"{need['mem_gb'] + shm_gb}Gi"}
    resource = plan.accelerator.get("kubernetes_resource")
    if need["devices"]:
        amounts[resource] = str(need["devices"])
    volumes, mounts = _volumes(plan, lay, files, shm_gb)
    image = plan.roles[component.roles[0]].image
    container = {"name": "agents" if component.name != DRIVER else DRIVER, "image": image,
                 "command": _command(plan, lay, component), "env": _env(plan, lay, component),
                 "resources": {"requests": amounts, "limits": dict(amounts)}, "volumeMounts": mounts,
                 "securityContext": {"allowPrivilegeEscalation": False}}
    spec = {"restartPolicy": "Never" if lay.jobset else "Always", "automountServiceAccountToken": False,
            "enableServiceLinks": False, "terminationGracePeriodSeconds": grace_seconds(plan),
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}, "containers": [container],
            "volumes": volumes}
    if conf.get("scheduler_name"):
        spec["schedulerName"] = conf["scheduler_name"]
    if need["devices"]:  # device nodes are often tainted with the device's name (e.g. nvidia.com/gpu)
        spec["tolerations"] = [{"key": resource, "operator": "Exists", "effect": "NoSchedule"}]
        affinity = _affinity(plan)
        if affinity:
            spec["affinity"] = affinity
    return {"metadata": {"labels": lay.labels(component.name)}, "spec": spec}
