"""The plan in words for people: the placement map and roles table of `areal plan`, and a role in one line.

Called by `areal plan`; `describe`, `ranges` and `plural` also by the picture (plan/picture.py) and `areal diff`."""
from __future__ import annotations

from areal_compiler.plan.model import DRIVER, Plan, RolePlan


def device_map(plan: Plan) -> dict[tuple[int, int], list[str]]:
    """(node, device) -> the processes on it: the owning worker first, then what is forked onto it."""
    cells: dict[tuple[int, int], list[str]] = {}
    for w in plan.workers:
        for d in w.devices:
            cells.setdefault((w.node, d), []).append(f"{w.role}/{w.index}")
            cells[(w.node, d)] += [f"+{f.role}/{f.index}" for f in w.forks]
    return cells


def text(plan: Plan) -> str:
    acc = plan.accelerator
    per_node = acc["devices_per_node"]
    lines = [f"{plan.experiment_name}/{plan.trial_name}  {acc['name']}  {plan.nodes} node(s) x {per_node} devices"
             f"  run {plan.run_id}", ""]
    cells = device_map(plan)
    for node in range(plan.nodes):
        lines.append(f"node {node}")
        for device in range(per_node):
            here = cells.get((node, device), [])
            lines.append(f"  device {device:<3} " + ("  ".join(here) if here else "(free)"))
        cpu_only = [f"{w.role}/{w.index}" for w in plan.workers if w.node == node and not w.devices]
        for w in plan.workers:
            if w.node == node and not w.devices:
                cpu_only += [f"+{f.role}/{f.index}" for f in w.forks]
        if cpu_only:
            lines.append("  no device  " + "  ".join(cpu_only))
    lines += ["", f"{'ROLE':<16} {'KIND':<10} {'BACKEND':<9} {'WORKERS':>7} {'DEVICES':>7}  {'NODES':<12} PLACEMENT"]
    for name, role in plan.roles.items():
        devices = role.workers * role.devices_per_worker if not role.colocated_with else 0
        if role.colocated_with:
            where = (f"forked onto {role.colocated_with}" if role.fork
                     else f"runs inside {role.colocated_with}'s processes")
        else:
            where = "own devices" if role.devices_per_worker else "no devices"
        nodes = ranges(role.nodes)
        lines.append(f"{name:<16} {role.kind:<10} {role.backend or '-':<9} {role.workers:>7} {devices:>7}  "
                     f"{nodes:<12} {where}")
    if plan.gate:
        g = plan.gate
        lines += ["", f"staleness gate on {g.role}/{g.index}: max_head_offpolicyness {g.max_head_offpolicyness}, "
                      f"max_concurrent_rollouts {g.max_concurrent_rollouts}, consumer_batch_size "
                      f"{g.consumer_batch_size}"]
    return "\n".join(lines) + "\n"


def ranges(numbers) -> str:
    """Sorted numbers as short runs: [0, 1, 2, 3, 6] -> "0-3,6"."""
    runs: list[list[int]] = []
    for n in sorted(set(numbers)):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ",".join(f"{a}-{b}" if b > a else str(a) for a, b in runs)


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 'es' if word.endswith('s') else 's'}"


def describe(name: str, role: RolePlan) -> str:
    """A role in one line, in the words of the roles table: "inference sglang, 4 workers x 2 devices = 8 devices
    on node 0" (used by the picture's legend and by `areal diff` for roles added or removed)."""
    n = role.workers
    if role.colocated_with and role.fork:
        what = f"forked onto {role.colocated_with}, {plural(n, 'process')}"
    elif role.colocated_with:
        what = f"runs inside {role.colocated_with}'s processes (none of its own)"
    elif name == DRIVER:
        what = "the job ends when it exits; 1 process, no device"
    elif role.devices_per_worker:
        d = role.devices_per_worker
        what = (f"{plural(n, 'worker')} x {plural(d, 'device')} = {plural(n * d, 'device')} on "
                f"node{'s' * (len(role.nodes) != 1)} {ranges(role.nodes)}")
    else:
        what = f"{plural(n, 'worker')}, no device"
    return f"{role.kind} {role.backend}, {what}" if role.backend else f"{role.kind}, {what}"
