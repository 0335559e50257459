"""What changes in the job's roles, totals, commands, environment, secrets, gate and completion, compared on the two
plans (plus each role's backend string, which the plan keeps only as the engine's name).

Called by review/sides.py (review); every change says which plan paths it describes (Change.covers)."""
from __future__ import annotations

import re
import shlex

from areal_compiler.plan import DRIVER, Plan
from areal_compiler.plan.model import RolePlan
from areal_compiler.plan.view import describe, ranges
from areal_compiler.review.changes import ANY, Change, show

# RolePlan field -> (section, label); fields not named here are shown under their own name in `roles`
FIELDS = {
    "kind": ("roles", "kind"), "backend": ("roles", "backend"), "workers": ("roles", "workers"),
    "devices_per_worker": ("roles", "devices per worker"), "instance_nodes": ("roles", "nodes per instance"),
    "nodes": ("roles", "nodes"), "image": ("roles", "image"), "cpu": ("roles", "CPUs per worker"),
    "mem_gb": ("roles", "memory per worker (GB)"), "readiness": ("roles", "readiness"),
    "upstream": ("roles", "upstream"), "argv": ("commands", "command"), "port_count": ("ports", "ports per worker"),
}
OWN = ("env", "colocated_with", "fork", "slurm")  # compared apart: env per key, colocation as one, slurm by asks.py


def _roles(plan: Plan | None) -> dict[str, RolePlan]:
    return plan.roles if plan is not None else {}


def _value(field: str, value) -> str:
    if field == "argv":
        return shlex.join(value)
    if field == "nodes":
        return ranges(value) or "(none)"
    return show(value)


def _colocation(role: RolePlan) -> str:
    if role.colocated_with is None:
        return "own devices" if role.devices_per_worker else "own processes, no device"
    return f"forked onto {role.colocated_with}" if role.fork else f"runs inside {role.colocated_with}'s processes"


def _forks_of(role: RolePlan) -> tuple[tuple, ...]:
    """The workers' fork lists a forked role appears in."""
    return (("workers", role.colocated_with, ANY, "forks"),) if role.colocated_with and role.fork else ()


def roles(old: Plan | None, new: Plan | None, backends: tuple[dict, dict]) -> list[Change]:
    """Roles added or removed, and per role what differs (commands and port counts in their own sections)."""
    a, b = _roles(old), _roles(new)
    out = []
    for name in [*b, *(n for n in a if n not in b)]:
        if name not in a or name not in b:
            role = b.get(name) or a[name]
            event = "added" if name in b else "removed"
            covers = (("roles", name), ("workers", name)) + _forks_of(role)
            text = describe(name, role)
            out.append(Change("roles", name, event, None if name in b else text, text if name in b else None,
                              covers))
            continue
        out += _role(name, a[name], b[name], backends[0].get(name), backends[1].get(name))
    return out


def _role(name: str, a: RolePlan, b: RolePlan, old_backend, new_backend) -> list[Change]:
    out = []
    if old_backend != new_backend:  # the string the user wrote; the plan's `backend` is only the engine
        out.append(Change("roles", name, "backend", show(old_backend), show(new_backend),
                          (("roles", name, "backend"),)))
    if (a.colocated_with, a.fork) != (b.colocated_with, b.fork):
        out.append(Change("roles", name, "colocation", _colocation(a), _colocation(b),
                          (("roles", name, "colocated_with"), ("roles", name, "fork"))
                          + _forks_of(a) + _forks_of(b)))
    for field in a.__dataclass_fields__:
        old, new = getattr(a, field), getattr(b, field)
        if field in OWN or old == new or (field == "backend" and out and out[0].what == "backend"):
            continue
        if field == "nodes" and a.colocated_with and b.colocated_with:  # its owner's nodes, shown there
            out.append(Change("", name, "nodes", None, None, (("roles", name, "nodes"),)))
            continue
        section, label = FIELDS.get(field, ("roles", field))
        out.append(Change(section, name, label, _value(field, old), _value(field, new), (("roles", name, field),)))
    out += [Change("environment", name, f"env {key}", a.env.get(key), b.env.get(key), (("roles", name, "env"),))
            for key in sorted({**a.env, **b.env}) if a.env.get(key) != b.env.get(key)]
    return out


def _hours(text) -> float | None:
    """A Slurm time limit in hours: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS; None if unlimited or unknown."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", str(text or ""))
    if not match:
        return None
    days, first, second, third = (int(g) if g else None for g in match.groups())
    if days is None:
        h, m, s = (first, second, third) if third is not None else (0, first, second or 0)
        hours = h + m / 60 + s / 3600
    else:
        hours = days * 24 + first + (second or 0) / 60 + (third or 0) / 3600
    return hours or None  # 0 asks Slurm for no limit


def _device_hours(plan: Plan) -> tuple[float | None, str | None]:
    """Devices x Slurm time limit per node (a node's roles may override the job's limit; the longest counts), and
    the one time limit when every node has the same; (None, None) without a limit for every node or devices."""
    per_node = plan.accelerator["devices_per_node"]
    job = plan.targets.get("slurm", {}).get("time")
    limits = {}
    for w in plan.workers:
        role = plan.roles[w.role]
        if w.role != DRIVER:
            limits.setdefault(w.node, set()).add(role.slurm.get("time", job))
    hours = {n: [_hours(t) for t in times] for n, times in limits.items()}
    if not per_node or not hours or any(h is None for hs in hours.values() for h in hs):
        return None, None
    total = sum(per_node * max(hs) for hs in hours.values())
    times = {t for ts in limits.values() for t in ts}
    return total, times.pop() if len(times) == 1 else None


def _totals(plan: Plan | None) -> dict[str, str]:
    if plan is None:
        return {}
    per_node = plan.accelerator["devices_per_node"]
    processes = [w.role for w in plan.workers] + [f.role for w in plan.workers for f in w.forks]
    return {"accelerator": plan.accelerator["name"], "nodes": str(plan.nodes), "devices": str(plan.nodes * per_node),
            "processes": str(len(processes)), "CPUs": str(sum(plan.roles[r].cpu for r in processes)),
            "memory (GB)": str(sum(plan.roles[r].mem_gb for r in processes))}


TOTAL_COVERS = {"accelerator": (("accelerator",),), "nodes": (("nodes",),),
                "device-hours": (("targets", "slurm", "time"), ("roles", ANY, "slurm", "time"))}


def totals(old: Plan | None, new: Plan | None) -> list[Change]:
    a, b = _totals(old), _totals(new)
    hours = [_device_hours(p) if p is not None else (None, None) for p in (old, new)]
    for side, (total, limit) in zip((a, b), hours):
        if total is not None:  # with the time limit when the change is one of it
            side["device-hours"] = f"{total:g}" + (f" (time limit {limit})" if hours[0][1] != hours[1][1] else "")
    return [Change("totals", "", key, a.get(key), b.get(key), TOTAL_COVERS.get(key, ()))
            for key in dict.fromkeys([*a, *b]) if a.get(key) != b.get(key)]


def run_name(old: Plan, new: Plan) -> list[Change]:
    """The run's name; what upstream's processes are told follows it unless the experiment sets it apart."""
    if (old.experiment_name, old.trial_name) == (new.experiment_name, new.trial_name):
        return []
    covers = [("experiment_name",), ("trial_name",)]
    covers += [("areal", key) for key in ("experiment_name", "trial_name")
               if old.areal[key] == getattr(old, key) and new.areal[key] == getattr(new, key)]
    return [Change("other", "run name", "", old.name, new.name, tuple(covers))]


def _reference(secret: dict) -> str:
    """Where a secret's value lives (never the value: the plan has none)."""
    k8s = secret.get("kubernetes")
    return f"file {secret.get('file')}" + (f", kubernetes secret {k8s['name']} key {k8s['key']}" if k8s else "")


def secrets(old: Plan | None, new: Plan | None) -> list[Change]:
    a, b = (p.secrets if p is not None else {} for p in (old, new))
    out = []
    for name in dict.fromkeys([*b, *a]):
        if a.get(name) != b.get(name):
            old_ref, new_ref = (_reference(s[name]) if name in s else None for s in (a, b))
            what = "added" if old_ref is None else "removed" if new_ref is None else "reference"
            out.append(Change("environment", f"secret {name}", what, old_ref, new_ref, (("secrets",),)))
    return out


def _gate_text(gate) -> str:
    return (f"on {gate.role}/{gate.index}: max_head_offpolicyness {gate.max_head_offpolicyness}, "
            f"max_concurrent_rollouts {gate.max_concurrent_rollouts}, consumer_batch_size "
            f"{gate.consumer_batch_size}, queue_size {gate.queue_size}")


def gate(old: Plan, new: Plan) -> list[Change]:
    """The staleness gate, and how the job ends (the driver, roles that may fail)."""
    a, b = old.gate, new.gate
    out = []
    if (a is None) != (b is None):
        out.append(Change("gate", "staleness gate", "added" if a is None else "removed",
                          a and _gate_text(a), b and _gate_text(b), (("gate",),)))
    elif a != b:
        if (a.role, a.index) != (b.role, b.index):
            out.append(Change("gate", "staleness gate", "served by", f"{a.role}/{a.index}", f"{b.role}/{b.index}",
                              (("gate", "role"), ("gate", "index"))))
        out += [Change("gate", "staleness gate", field, show(getattr(a, field)), show(getattr(b, field)),
                       (("gate", field),))
                for field in a.__dataclass_fields__ if field not in ("role", "index")
                and getattr(a, field) != getattr(b, field)]
    if old.completion.driver != new.completion.driver:
        ends = {True: "when the driver exits, with its exit code", False: "when every worker has ended"}
        out.append(Change("gate", "the job", "ends", ends[old.completion.driver], ends[new.completion.driver],
                          (("completion", "driver"),)))
    fails = set(old.completion.may_fail) ^ set(new.completion.may_fail)
    yes = {True: "yes", False: "no"}
    out += [Change("gate", name, "may fail", yes[name in old.completion.may_fail],
                   yes[name in new.completion.may_fail], (("completion", "may_fail"),)) for name in sorted(fails)]
    return out
