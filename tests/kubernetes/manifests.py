"""Offline validation of compiled Kubernetes manifests in three layers, plus what only an API server enforces.

Used by tests/kubernetes/*. Layer 1: the JobSet against the strict schema derived from the vendored CRD.
Layer 2: kubernetes-validate (strict, the configured version): every pod template wrapped as a batch/v1 Job, the
core objects as they are. Layer 3: the `kubernetes` client's pydantic models (extra fields forbidden).
Own checks: names, label syntax, quantities, selectors, requests = limits, escaped `$(`."""
from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
STRICT_SCHEMA = ROOT / "schemas" / "vendor" / "jobset-v1alpha2.strict.schema.json"
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
QUANTITY = re.compile(r"^[+]?(\d+\.?\d*|\.\d+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?\d+)?$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
UNESCAPED = re.compile(r"(?<!\$)\$\(")  # `$(` that Kubernetes would expand (an escaped one is `$$(`)


def load(folder: Path) -> dict[str, list[dict]]:
    """file -> objects, for every manifest the kustomization lists (plus the RBAC example)."""
    folder = Path(folder)
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text(encoding="utf-8"))
    files = list(kustomization["resources"]) + ["rbac.example.yaml"]
    return {f: list(yaml.safe_load_all((folder / f).read_text(encoding="utf-8"))) for f in files}


def objects(folder: Path) -> list[dict]:
    return [obj for docs in load(folder).values() for obj in docs]


def pod_templates(obj: dict) -> list[tuple[str, dict, dict]]:
    """(name, Job spec or None, pod template) of a JobSet's replicated Jobs or a StatefulSet."""
    if obj["kind"] == "JobSet":
        return [(rj["name"], rj["template"], rj["template"]["spec"]["template"])
                for rj in obj["spec"]["replicatedJobs"]]
    if obj["kind"] == "StatefulSet":
        return [(obj["metadata"]["name"], None, obj["spec"]["template"])]
    return []


# -- layer 1: the CRD --
def layer_crd(obj: dict) -> list[str]:
    if obj["kind"] != "JobSet":
        return []
    validator = jsonschema.Draft7Validator(json.loads(STRICT_SCHEMA.read_text(encoding="utf-8")))
    return [f"JobSet CRD: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]


# -- layer 2: the cluster version's own schemas --
def as_job(obj: dict, job_template: dict) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "wrapped", "namespace": obj["metadata"]["namespace"],
                         **job_template.get("metadata", {})},
            "spec": job_template["spec"]}


def layer_cluster(obj: dict, version: str) -> list[str]:
    import kubernetes_validate

    docs = [as_job(obj, job) for _, job, _ in pod_templates(obj)] if obj["kind"] == "JobSet" else [obj]
    out = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            out.append(f"kubernetes-validate {version} {doc['kind']}: {'/'.join(map(str, exc.path))}: {exc.message}")
    return out


# -- layer 3: the client's models --
def layer_models(obj: dict) -> list[str]:
    import pydantic
    from kubernetes import client

    kinds = {"ConfigMap": client.V1ConfigMap, "Service": client.V1Service, "StatefulSet": client.V1StatefulSet,
             "Role": client.V1Role, "RoleBinding": client.V1RoleBinding}
    docs = [(client.V1Job, as_job(obj, job)) for _, job, _ in pod_templates(obj)] if obj["kind"] == "JobSet" \
        else [(kinds[obj["kind"]], obj)]
    out = []
    for model, doc in docs:
        try:
            model.model_validate(doc)
        except pydantic.ValidationError as exc:
            out.append(f"kubernetes {model.__name__}: {exc}")
    return out


# -- what only the API server enforces --
def _labels(where: str, labels: dict) -> list[str]:
    out = []
    for key, value in (labels or {}).items():
        prefix, _, name = key.rpartition("/")
        if not (LABEL_NAME.match(name) and len(name) <= 63) or (prefix and not DNS_1123_SUBDOMAIN.match(prefix)):
            out.append(f"{where}: label key {key!r} is invalid")
        if not (LABEL_VALUE.match(str(value)) and len(str(value)) <= 63):
            out.append(f"{where}: label value {value!r} of {key} is invalid")
    return out


def _container(where: str, c: dict) -> list[str]:
    out = []
    requests, limits = c.get("resources", {}).get("requests", {}), c.get("resources", {}).get("limits", {})
    for name, amount in list(requests.items()) + list(limits.items()):
        if not QUANTITY.match(str(amount)):
            out.append(f"{where}: quantity {name}={amount!r} is not a Kubernetes quantity")
    for name in set(requests) | set(limits):
        if "/" in name and requests.get(name) != limits.get(name):
            out.append(f"{where}: extended resource {name} must have requests == limits")
    for env in c.get("env", []):
        if not ENV_NAME.match(env["name"]):
            out.append(f"{where}: env name {env['name']!r} is invalid")
        if "value" in env and UNESCAPED.search(env["value"]):
            out.append(f"{where}: env {env['name']} holds `$(` that Kubernetes would expand")
    out += [f"{where}: command item {a!r} holds `$(` that Kubernetes would expand" for a in c.get("command", [])
            if UNESCAPED.search(a)]
    return out


ENUMS = {  # core enums the published OpenAPI schemas (and so layers 2 and 3) leave as plain strings
    "restartPolicy": {"Always", "OnFailure", "Never"},
    "podManagementPolicy": {"OrderedReady", "Parallel"},
    "completionMode": {"NonIndexed", "Indexed"},
    "operator": {"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt", "Equal"},
    "effect": {"NoSchedule", "PreferNoSchedule", "NoExecute"},
    "type": {"RuntimeDefault", "Localhost", "Unconfined"},  # seccompProfile
    "medium": {"", "Memory", "HugePages"},
}


def _enums(where: str, node, parent: str = "") -> list[str]:
    """Every known enum field anywhere below `node` (seccompProfile.type only under seccompProfile)."""
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            known = ENUMS.get(key) if key != "type" or parent == "seccompProfile" else None
            if known is not None and isinstance(value, str) and value not in known:
                out.append(f"{where}: {key} {value!r} is not one of {sorted(known)}")
            out += _enums(where, value, key)
    elif isinstance(node, list):
        for item in node:
            out += _enums(where, item, parent)
    return out


def _pod(where: str, template: dict, namespace_objects: dict) -> list[str]:
    out = _labels(where, template["metadata"].get("labels")) + _enums(where, template["spec"])
    spec = template["spec"]
    for c in spec["containers"]:
        out += _container(f"{where} container {c['name']}", c)
    for v in spec.get("volumes", []):
        if "configMap" in v and v["configMap"]["name"] not in namespace_objects.get("ConfigMap", ()):
            out.append(f"{where}: volume {v['name']} names ConfigMap {v['configMap']['name']} that is not shipped")
    return out


def _name_rules(obj: dict) -> list[str]:
    kind, name = obj["kind"], obj["metadata"]["name"]
    out = _labels(f"{kind} {name}", obj["metadata"].get("labels"))
    if not (DNS_1123_SUBDOMAIN.match(name) and len(name) <= 253):
        out.append(f"{kind} {name}: not a DNS-1123 subdomain")
    if kind in ("Service", "JobSet", "StatefulSet") and not (DNS_1035.match(name) and len(name) <= 63):
        out.append(f"{kind} {name}: not a DNS-1035 label of at most 63")
    if not DNS_1123_LABEL.match(obj["metadata"].get("namespace", "")):
        out.append(f"{kind} {name}: namespace is not a DNS-1123 label")
    return out


def layer_server(objs: list[dict]) -> list[str]:
    by_kind: dict[str, dict] = {}
    for obj in objs:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
    out = []
    for obj in objs:
        out += _name_rules(obj)
        for name, job, template in pod_templates(obj):
            out += _pod(f"{obj['kind']} {obj['metadata']['name']}/{name}", template, by_kind)
        if obj["kind"] == "JobSet":
            out += _jobset_rules(obj)
        if obj["kind"] == "StatefulSet":
            out += _statefulset_rules(obj, by_kind.get("Service", {}))
    return out


def _jobset_rules(obj: dict) -> list[str]:
    name, out = obj["metadata"]["name"], []
    names = [rj["name"] for rj in obj["spec"]["replicatedJobs"]]
    for target in obj["spec"].get("successPolicy", {}).get("targetReplicatedJobs", []):
        if target not in names:
            out.append(f"JobSet {name}: successPolicy names unknown replicated Job {target}")
    for rj in obj["spec"]["replicatedJobs"]:
        spec = rj["template"]["spec"]
        out += _enums(f"JobSet {name}/{rj['name']}", {k: v for k, v in spec.items() if k != "template"})
        pods = spec.get("completions", 1)
        for rep in range(rj["replicas"]):
            pod = f"{name}-{rj['name']}-{rep}-{pods - 1}"
            if len(pod) + 6 > 63 or not DNS_1035.match(rj["name"]):
                out.append(f"JobSet {name}: pod name {pod}-xxxxx exceeds 63 or {rj['name']} is not DNS-1035")
        if spec["template"]["spec"].get("restartPolicy") != "Never" or spec.get("backoffLimit") != 0:
            out.append(f"JobSet {name}/{rj['name']}: pods must not be restarted (restartPolicy Never, backoffLimit 0)")
    return out


def _statefulset_rules(obj: dict, services: dict) -> list[str]:
    name, spec = obj["metadata"]["name"], obj["spec"]
    out = _enums(f"StatefulSet {name}", {k: v for k, v in spec.items() if k != "template"})
    labels = spec["template"]["metadata"].get("labels", {})
    if any(labels.get(k) != v for k, v in spec["selector"]["matchLabels"].items()):
        out.append(f"StatefulSet {name}: selector is not a subset of the pod template's labels")
    service = services.get(spec.get("serviceName"))
    if service is None or service["spec"].get("clusterIP") != "None":
        out.append(f"StatefulSet {name}: serviceName does not name a headless Service of this set")
    elif any(labels.get(k) != v for k, v in service["spec"]["selector"].items()):
        out.append(f"Service {service['metadata']['name']}: selector does not select the StatefulSet's pods")
    if len(name) + 11 > 63:
        out.append(f"StatefulSet {name}: name too long for its controller-revision-hash label")
    return out


def problems(objs: list[dict], version: str) -> list[str]:
    """Every problem of every layer (empty when the manifests are fine)."""
    out = layer_server(objs)
    for obj in objs:
        out += layer_crd(obj) + layer_cluster(obj, version) + layer_models(obj)
    return out
