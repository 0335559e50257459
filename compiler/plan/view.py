"""Pictures of a plan for people: a text placement map (nodes x devices) and an SVG grid for PR descriptions.

Called by `areal plan`; reads only the plan."""
from __future__ import annotations

from html import escape

from areal_compiler.plan.model import Plan

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")


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
        nodes = ",".join(map(str, role.nodes)) if len(role.nodes) <= 4 else f"{role.nodes[0]}-{role.nodes[-1]}"
        lines.append(f"{name:<16} {role.kind:<10} {role.backend or '-':<9} {role.workers:>7} {devices:>7}  "
                     f"{nodes:<12} {where}")
    if plan.gate:
        g = plan.gate
        lines += ["", f"staleness gate on {g.role}/{g.index}: max_head_offpolicyness {g.max_head_offpolicyness}, "
                      f"max_concurrent_rollouts {g.max_concurrent_rollouts}, consumer_batch_size "
                      f"{g.consumer_batch_size}"]
    return "\n".join(lines) + "\n"


def svg(plan: Plan) -> str:
    per_node = max(1, plan.accelerator["devices_per_node"])
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(plan.roles)}
    cell_w, cell_h, left, top = 104, 46, 70, 40
    width = left + per_node * cell_w + 10
    height = top + plan.nodes * cell_h + 30 + 18 * len(plan.roles)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="monospace" font-size="11">',
           f'<text x="4" y="16" font-size="13">{escape(plan.experiment_name)}/{escape(plan.trial_name)} '
           f'({escape(plan.accelerator["name"])}, {plan.nodes} node(s))</text>']
    cells = device_map(plan)
    for node in range(plan.nodes):
        y = top + node * cell_h
        out.append(f'<text x="4" y="{y + 26}">node {node}</text>')
        for device in range(per_node):
            x = left + device * cell_w
            here = cells.get((node, device), [])
            fill = colors[here[0].split("/")[0]] if here else "#eeeeee"
            out.append(f'<rect x="{x}" y="{y}" width="{cell_w - 4}" height="{cell_h - 4}" rx="4" fill="{fill}"/>')
            for i, label in enumerate(here[:3] or [f"dev {device} free"]):
                out.append(f'<text x="{x + 4}" y="{y + 14 + 12 * i}" fill="{"#000" if not here else "#fff"}">'
                           f'{escape(label)}</text>')
    y = top + plan.nodes * cell_h + 14
    for name, role in plan.roles.items():
        out.append(f'<rect x="4" y="{y - 10}" width="10" height="10" fill="{colors[name]}"/>'
                   f'<text x="20" y="{y}">{escape(name)}: {role.workers} x {role.devices_per_worker} '
                   f'{escape(role.backend or role.kind)}'
                   f'{escape(" on " + role.colocated_with) if role.colocated_with else ""}</text>')
        y += 18
    out.append("</svg>")
    return "\n".join(out) + "\n"
