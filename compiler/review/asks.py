"""What each target would ask a cluster for, as groups of key -> value: Slurm's #SBATCH lines per job component and
srun options per step, Kubernetes' pods and their requests and limits, Ray's placement-group bundles and entrypoint.

Called by review/sides.py (review), on plans both compiled for the target; read from the targets' own data (the
same functions their render writes from), so a review says what the files say."""
from __future__ import annotations

from areal_compiler.plan import Plan
from areal_compiler.review.changes import ANY, Change

GIB = 1024 ** 3
NAMES_ONLY = ("job-name", "output", "error")  # Slurm options that name things; the job's terms are resources
FLAG = "yes"  # an option without a value (--requeue)


def _options(args: list[str]) -> dict[str, str]:
    out = {}
    for arg in args:
        key, _, value = arg.removeprefix("--").partition("=")
        if arg.startswith("--") and key not in NAMES_ONLY:
            out[key] = value or FLAG
    return out


def slurm(plan: Plan) -> dict[str, dict[str, str]]:
    from areal_compiler.targets import slurm as target

    context = target.context(plan)
    out = {f"job component {c['label']}": _options([target.sbatch_option(*kv) for kv in c["sbatch"]])
           for c in context["components"]}
    out.update({f"step {s['role']}": _options(s["srun"]) for s in context["steps"]})
    return out


def _resources(pod: dict) -> dict[str, str]:
    out = {}
    containers = pod["containers"]
    for c in containers:
        requests, limits = c.get("resources", {}).get("requests", {}), c.get("resources", {}).get("limits", {})
        for name in dict.fromkeys([*requests, *limits]):
            r, lim = requests.get(name, "(none)"), limits.get(name, "(none)")
            key = name if len(containers) == 1 else f"{c['name']} {name}"
            out[key] = r if r == lim else f"{r} request, {lim} limit"
    return out


def kubernetes(plan: Plan) -> dict[str, dict[str, str]]:
    """Per group of pods (a JobSet's replicated Job, a StatefulSet): how many pods, and each one's resources."""
    from areal_compiler.targets import kubernetes as target

    out = {}
    for docs in target.objects(plan).values():
        for doc in docs:
            if doc.get("kind") == "JobSet":
                for job in doc["spec"]["replicatedJobs"]:
                    spec = job["template"]["spec"]
                    pods = job.get("replicas", 1) * spec.get("parallelism", 1)
                    out[f"pods {job['name']}"] = {"pods": str(pods), **_resources(spec["template"]["spec"])}
            elif doc.get("kind") == "StatefulSet":
                name = doc["metadata"].get("labels", {}).get("areal/component", doc["metadata"]["name"])
                out[f"pods {name}"] = {"pods": str(doc["spec"]["replicas"]),
                                       **_resources(doc["spec"]["template"]["spec"])}
    return out


def _amounts(bundle: dict) -> str:
    return ", ".join(f"memory {v / GIB:g} GiB" if k == "memory" else f"{k} {v:g}" for k, v in bundle.items())


def ray(plan: Plan) -> dict[str, dict[str, str]]:
    from areal_compiler.targets import ray as target

    group = target.placement(plan)["placement_group"]
    bundles = {f"bundle {i}": _amounts(b) for i, b in enumerate(group["bundles"])}
    for i, selector in enumerate(group.get("bundle_label_selector", [])):
        bundles[f"bundle {i}"] += "; " + ", ".join(f"{k}={v}" for k, v in selector.items())
    job = target.job(plan)
    entry = {"CPUs": f"{job['entrypoint_num_cpus']:g}"}
    if "entrypoint_memory" in job:
        entry["memory"] = f"{job['entrypoint_memory'] / GIB:g} GiB"
    return {"placement group": {"strategy": group["strategy"], **bundles}, "entrypoint": entry}


ASKS = {"slurm": slurm, "kubernetes": kubernetes, "ray": ray}  # local asks no cluster for anything


def _covers(target: str, key: str) -> tuple[tuple, ...]:
    """The settings an asked value shows as they are written (slurm.partition is the --partition line)."""
    if target != "slurm":
        return ()
    from areal_compiler.targets.slurm import JOB_KEYS

    if key in JOB_KEYS:
        return ("targets", "slurm", key), ("roles", ANY, "slurm", key)
    if key in ("requeue", "no-requeue", "open-mode"):
        return (("targets", "slurm", "max_retries"),)
    return (("targets", "slurm", "gres_type"),) if key == "gres" else ()


def _line(values: dict[str, str]) -> str:
    return ", ".join(k if v == FLAG else f"{k} {v}" for k, v in values.items())


def changes(target: str, old: Plan | None, new: Plan | None) -> list[Change]:
    """What the target asks for differently; OLD or NEW is None where that side is not compiled for it."""
    out = []
    if (old is None) != (new is None):
        out.append(Change("targets", target, "added" if old is None else "removed", None, None))
    ask = ASKS.get(target)
    if ask is None:
        return out
    a, b = (ask(p) if p is not None else {} for p in (old, new))
    for group in dict.fromkeys([*b, *a]):
        if group not in a or group not in b:
            event = "added" if group in b else "removed"
            out.append(Change(target, group, event, None if group in b else _line(a[group]),
                              _line(b[group]) if group in b else None))
            continue
        for key in dict.fromkeys([*b[group], *a[group]]):
            if a[group].get(key) != b[group].get(key):
                out.append(Change(target, group, key, a[group].get(key), b[group].get(key), _covers(target, key)))
    return out
