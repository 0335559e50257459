"""Everything a plan may hold that the Kubernetes target cannot express, as located TargetErrors (and what it can
express but will not work there, as TargetWarnings).

Called by targets/kubernetes.py check(); the rules Kubernetes' API server would enforce (names, label syntax)
are checked here so `areal compile` fails instead of `kubectl apply`."""
from __future__ import annotations

import re

from areal_compiler.plan import DRIVER, Plan
from areal_compiler.targets import TargetError, TargetWarning
from areal_compiler.targets.k8s_layout import DNS_1035, Layout, layout, longest_names, settings, shortest_fix

MIN_VERSION = (1, 28)  # StatefulSet pods' index label; JobSet v0.12 needs at least this too
SLURM_ONLY_ROLE = ("reservation", "exclusive", "nodelist", "exclude")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
DNS_1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
CONFIGMAP_LIMIT = 1024 * 1024


def version(text: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"([0-9]+)\.([0-9]+)", str(text))
    return (int(match.group(1)), int(match.group(2))) if match else None


def label_key(key: str) -> bool:
    """[PREFIX/]NAME: a label name, after an optional DNS subdomain of at most 253 characters and a `/`."""
    prefix, slash, name = key.rpartition("/")
    return bool(LABEL_NAME.fullmatch(name)) and (not slash or (len(prefix) <= 253
                                                               and bool(DNS_1123_SUBDOMAIN.fullmatch(prefix))))


def settings_errors(plan: Plan) -> list[TargetError]:
    conf, out = settings(plan), []
    parsed = version(conf.get("version", ""))
    if parsed is None or parsed < MIN_VERSION:
        out.append(TargetError(f"kubernetes.version `{conf.get('version')}` must be MAJOR.MINOR, at least "
                               f"{MIN_VERSION[0]}.{MIN_VERSION[1]} (e.g. 1.33)", ("kubernetes", "version")))
    if conf.get("name") is not None and not DNS_1035.fullmatch(conf["name"]):
        out.append(TargetError(f"kubernetes.name `{conf['name']}` must be a DNS-1035 label: lower-case letters, "
                               "digits and `-`, starting with a letter", ("kubernetes", "name")))
    for key in ("queue", "scheduler_name"):
        if conf.get(key) is not None and not (LABEL_NAME.fullmatch(conf[key]) and len(conf[key]) <= 63):
            out.append(TargetError(f"kubernetes.{key} `{conf[key]}` must be 1-63 letters, digits, `-`, `_` or `.`, "
                                   "starting and ending alphanumeric", ("kubernetes", key)))
    claim = conf.get("fileroot_claim")
    if claim is not None and not (DNS_1123_SUBDOMAIN.fullmatch(claim) and len(claim) <= 253):
        out.append(TargetError(f"kubernetes.fileroot_claim `{claim}` is not a PersistentVolumeClaim name",
                               ("kubernetes", "fileroot_claim")))
    for key, values in (conf.get("node_affinity") or {}).items():
        if not label_key(key):
            out.append(TargetError(f"node label `{key}` is not a Kubernetes label key",
                                   ("kubernetes", "node_affinity", key)))
        for value in values:
            if not LABEL_VALUE.fullmatch(value):
                out.append(TargetError(f"`{value}` is not a Kubernetes label value (at most 63 letters, digits, "
                                       "`-`, `_`, `.`)", ("kubernetes", "node_affinity", key)))
        if not values:
            out.append(TargetError(f"node label `{key}` lists no accepted value", ("kubernetes", "node_affinity", key)))
    if conf.get("workload") == "statefulset" and DRIVER in plan.roles:
        out.append(TargetError("kubernetes.workload statefulset restarts every pod forever, so the driver would run "
                               "again after it ends: use workload jobset", ("kubernetes", "workload")))
    return out


def slurm_only_errors(plan: Plan) -> list[TargetError]:
    """Slurm settings that change where or how processes run cannot be honoured here; said, never ignored."""
    out, job = [], plan.targets.get("slurm") or {}
    for name, role in plan.roles.items():
        for key in SLURM_ONLY_ROLE:
            if role.slurm.get(key) not in (None, False):
                out.append(TargetError(f"roles.{name}.slurm.{key} is Slurm-only: Kubernetes cannot honour it; remove "
                                       "it or compile for slurm only", ("roles", name, "slurm", key)))
    if job.get("container_type", "none") != "none":
        out.append(TargetError(f"slurm.container_type {job['container_type']} is Slurm-only: on Kubernetes every pod "
                               "runs the role's image; remove it or compile for slurm only",
                               ("slurm", "container_type")))
    if job.get("mount"):
        out.append(TargetError("slurm.mount is Slurm-only: on Kubernetes use kubernetes.fileroot_claim for shared "
                               "files", ("slurm", "mount")))
    return out


def plan_errors(plan: Plan, lay: Layout) -> list[TargetError]:
    out = []
    if ":" in plan.fileroot:
        out.append(TargetError(f"fileroot `{plan.fileroot}` holds `:`, which a Kubernetes mount path may not",
                               ("fileroot",)))
    for name, ref in sorted(plan.secrets.items()):
        k8s = ref.get("kubernetes")
        if not k8s:
            out.append(TargetError(f"secret {name} has no kubernetes: {{name, key}}: say which Kubernetes Secret holds "
                                   "it", ("secrets", name)))
        elif not (DNS_1123_SUBDOMAIN.fullmatch(k8s["name"]) and SECRET_KEY.fullmatch(k8s["key"])):
            out.append(TargetError(f"secret {name}: `{k8s['name']}`/`{k8s['key']}` is not a Secret name and key",
                                   ("secrets", name, "kubernetes")))
        if not ENV_NAME.fullmatch(name):
            out.append(TargetError(f"secret {name} is not an environment variable name", ("secrets", name)))
    for c in lay.all_components:
        images = {r: plan.roles[r].image for r in c.roles}
        if not all(images.values()):
            role = next(r for r, i in images.items() if not i)
            out.append(TargetError(f"role `{role}` has no image: Kubernetes runs every pod from one; set `image`",
                                   ("roles", role) if role != DRIVER else ("driver",), setting="image"))
        elif len(set(images.values())) > 1:
            out.append(TargetError(f"roles {', '.join(c.roles)} share pods (one per node) but name different images "
                                   f"{sorted(set(images.values()))}: give them one image",
                                   ("roles", c.roles[-1], "scheduling_spec", "image")))
    return out


def name_errors(plan: Plan, lay: Layout) -> list[TargetError]:
    where = ("kubernetes", "name") if settings(plan).get("name") else ("experiment_name",)
    out = []
    for name, limit, what in longest_names(lay):
        if len(name) > limit:
            out.append(TargetError(f"{what} `{name}` would be {len(name)} characters (limit {limit}): set "
                                   f"kubernetes.name to at most {shortest_fix(lay, name, limit)} characters "
                                   "(or shorten role names)", where))
    if not DNS_1035.fullmatch(lay.base) and not settings(plan).get("name"):
        out.append(TargetError(f"`{lay.base}` must start with a letter to name Kubernetes objects: set "
                               "kubernetes.name", where))
    return out


def name_service_warnings(plan: Plan, lay: Layout) -> list[TargetError]:
    """Upstream's `nfs` name service keeps its records in a directory every upstream process must share; between
    pods only fileroot on kubernetes.fileroot_claim is shared (without a claim fileroot is a per-pod emptyDir)."""
    resolve = (plan.areal or {}).get("name_resolve") or {}
    pods = sum(max(len(c.nodes), 1) for c in lay.all_components)
    if resolve.get("type") != "nfs" or pods < 2 or not any(r.upstream for r in plan.roles.values()):
        return []
    root, fileroot = resolve["nfs_record_root"], plan.fileroot.rstrip("/")
    under = root.rstrip("/") == fileroot or root.startswith(fileroot + "/")
    if under and settings(plan).get("fileroot_claim"):
        return []
    why = (f"fileroot {plan.fileroot} is a per-pod emptyDir without kubernetes.fileroot_claim" if under else
           f"it is not under fileroot {plan.fileroot}, the one path pods can share (on kubernetes.fileroot_claim)")
    return [TargetWarning(f"upstream's name service (nfs) keeps its records in {root}, which all {pods} pods of the "
                          f"job must share, but {why}: each pod would see only its own records. Set "
                          "kubernetes.fileroot_claim to a ReadWriteMany PVC and nfs_record_root under fileroot, or "
                          "use name_resolve type etcd3", ("areal", "name_resolve", "nfs_record_root"))]


def check(plan: Plan) -> list[TargetError]:
    out = settings_errors(plan) + slurm_only_errors(plan)
    lay = layout(plan)
    out += plan_errors(plan, lay) + name_errors(plan, lay) + name_service_warnings(plan, lay)
    if not lay.components:
        out.append(TargetError("the plan has no role with processes to start", ("roles",)))
    return out
