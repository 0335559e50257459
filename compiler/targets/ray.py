"""The Ray target: job.json (the exact body of Ray's `POST /api/jobs/`), placement.json and the launcher.

Called by targets.render; submitted over REST by runs/ray.py (`areal submit --target ray`). The entrypoint is fixed
text (`python3 launcher.py`): no user text reaches Ray's shell. The launcher (launchers/ray_launcher.py, shipped as
launcher.py) reads placement.json and plan.json from the job's working directory and creates one placement group for
the whole job: one bundle per logical node (its devices, CPUs and memory), STRICT_SPREAD across nodes when there are
several. Worker CPUs and memory add up per node, forked colocated roles' CPUs and memory added to their target's.
From Ray 2.49 (`ray.version`) the accelerator model is a bundle label selector on `ray.io/accelerator-type`; before,
a small share of the `accelerator_type:<model>` resource. Submit adds `runtime_env.working_dir` (the uploaded
package) and AREAL_WORKDIR (the directory submitted from, where workers run, as with Slurm)."""
from __future__ import annotations

import re
from pathlib import Path

from areal_compiler.plan import Plan, canonical_json
from areal_compiler.targets import Artifact, TargetError

NAME = "ray"
ENTRY = "job.json"
BACKEND = "areal_compiler.runs.ray"
ENTRYPOINT = "python3 launcher.py"
LAUNCHER = Path(__file__).resolve().parent.parent / "launchers" / "ray_launcher.py"
LABEL_SELECTORS_FROM = (2, 49)
LABEL = "ray.io/accelerator-type"
TYPE_SHARE = 0.001  # of `accelerator_type:<model>` per bundle: selects the node model, blocks nothing
GIB = 1024 ** 3
STOP_MARGIN = 5  # seconds an agent gets to stop beyond the grace period it gives its worker


def version_tuple(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"([0-9]+)\.([0-9]+)", str(text))
    if not match:
        raise TargetError(f"ray.version `{text}` is not MAJOR.MINOR (e.g. \"2.60\")", ("ray", "version"))
    return int(match.group(1)), int(match.group(2))


def accelerator_type(plan: Plan) -> str | None:
    """The model as Ray names it on its nodes: GPU_8xH100 -> H100, GPU_8xA100_80GB -> A100, NPU_16x910B ->
    Ascend910B; None for CPU-only plans."""
    name = plan.accelerator["name"]
    if not plan.accelerator.get("ray_resource"):
        return None
    model = name.split("x", 1)[1].split("_", 1)[0]
    return f"Ascend{model}" if name.startswith("NPU_") else model


def submission_id(plan: Plan) -> str:
    """Stable per experiment: Ray refuses a second job with the same id, so a repeated submit cannot double-run.
    Submitting again after that job ended uses the next free `<id>-<n>` (Ray keeps an id's log for good)."""
    return f"areal-{plan.experiment_sha256[:20]}"


def run_parent(plan: Plan) -> str:
    """Each submission's run directory is <run_parent>/<submission id>."""
    return f"{plan.fileroot}/{plan.experiment_name}/{plan.trial_name}"


def driver_worker(plan: Plan):
    """The worker the entrypoint runs itself (role kind `driver`), when the experiment has one."""
    return next((w for w in plan.workers if plan.roles[w.role].kind == "driver"), None)


def driver_name(plan: Plan) -> str | None:
    worker = driver_worker(plan)
    return f"{worker.role}/{worker.index}" if worker else None


def _node_workers(plan: Plan, node: int) -> list:
    return [w for w in plan.node_workers[node] if plan.roles[w.role].kind != "driver"]


def _needs(plan: Plan, role: str, forks: list) -> tuple[int, int]:
    """CPUs and GB one worker of `role` takes with its forked processes."""
    return (plan.roles[role].cpu + sum(plan.roles[f.role].cpu for f in forks),
            plan.roles[role].mem_gb + sum(plan.roles[f.role].mem_gb for f in forks))


def _bundle(plan: Plan, node: int, needs: dict) -> tuple[dict, dict]:
    """The node's bundle and what its actor runs: workers, planned devices, devices per role. NEEDS caches
    _needs per role (every worker of a role forks the same roles)."""
    cpu = mem = 0
    devices: set[int] = set()
    per_role: dict[str, set] = {}
    workers = _node_workers(plan, node)
    for w in workers:
        if w.role not in needs:
            needs[w.role] = _needs(plan, w.role, w.forks)
        cpu, mem = cpu + needs[w.role][0], mem + needs[w.role][1]
        devices.update(w.devices)
        per_role.setdefault(w.role, set()).update(w.devices)
    bundle: dict = {"CPU": max(cpu, 1)}  # Ray refuses a bundle of only zeros
    if mem:
        bundle["memory"] = mem * GIB
    resource = plan.accelerator.get("ray_resource")
    if devices:
        bundle[resource] = len(devices)
    actor = {"devices": sorted(devices),  # keys in sorted order: canonical as built (render)
             "role_devices": {role: sorted(devs) for role, devs in sorted(per_role.items()) if devs},
             "workers": [f"{w.role}/{w.index}" for w in workers]}
    return bundle, actor


def stop_wait(plan: Plan) -> int:
    """Seconds Ray waits after its SIGTERM before killing the launcher: every stop stage (driver, workers, the
    gate's worker) may take the grace period plus the launcher's margin."""
    stages = 1 + (driver_worker(plan) is not None) + (plan.gate is not None)
    return int(stages * (plan.runtime["grace_period"] + STOP_MARGIN) + STOP_MARGIN)


def placement(plan: Plan) -> dict:
    """placement.json: everything the launcher needs beyond plan.json, decided here rather than at run time."""
    settings = plan.targets["ray"]
    model = accelerator_type(plan)
    label = model is not None and version_tuple(settings["version"]) >= LABEL_SELECTORS_FROM
    bundles, actors, needs = [], [], {}
    for node in range(plan.nodes):
        bundle, actor = _bundle(plan, node, needs)
        if model and not label:
            bundle[f"accelerator_type:{model}"] = TYPE_SHARE
        bundles.append(bundle)
        actors.append(actor)
    group = {"strategy": "STRICT_SPREAD" if plan.nodes > 1 else "PACK", "bundles": bundles}
    if label:
        group["bundle_label_selector"] = [{LABEL: model}] * plan.nodes
    return {"placement_group": group, "device_resource": plan.accelerator.get("ray_resource"), "nodes": actors,
            "driver": driver_name(plan), "run_parent": run_parent(plan), "stop_timeout": plan.runtime["grace_period"]
            + STOP_MARGIN}


def job(plan: Plan) -> dict:
    """The body of `POST /api/jobs/` (submit adds runtime_env.working_dir and env_vars.AREAL_WORKDIR)."""
    driver = driver_worker(plan)
    body = {
        "entrypoint": ENTRYPOINT,
        "submission_id": submission_id(plan),
        "runtime_env": {"env_vars": {"PYTHONUNBUFFERED": "1", "RAY_JOB_STOP_WAIT_TIME_S": str(stop_wait(plan))}},
        "metadata": {"areal_experiment": plan.experiment_name, "areal_trial": plan.trial_name,
                     "areal_run_id": plan.run_id, "areal_experiment_sha256": plan.experiment_sha256},
        "entrypoint_num_cpus": plan.roles[driver.role].cpu if driver else 0,
    }
    if driver and plan.roles[driver.role].mem_gb:
        body["entrypoint_memory"] = plan.roles[driver.role].mem_gb * GIB
    return body


def check(plan: Plan) -> list[TargetError]:
    try:
        version_tuple(plan.targets["ray"]["version"])
    except TargetError as exc:
        return [exc]
    return []


def render(plan: Plan, attachments: dict[str, bytes]) -> list[Artifact]:
    return [Artifact("job.json", canonical_json(job(plan)).encode()),
            Artifact("placement.json", canonical_json(placement(plan), built="nodes").encode()),
            Artifact("launcher.py", LAUNCHER.read_bytes().replace(b"\r\n", b"\n"), shipped=True)]
