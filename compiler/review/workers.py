"""What changes worker by worker: placement (moved, added, removed workers, summed up per role and pair of nodes)
and ports (compared as values per role, whatever way they are numbered); plus the marks for the diff picture.

Called by review/sides.py (review); the marks go to plan/picture.py."""
from __future__ import annotations

from areal_compiler.plan import Plan
from areal_compiler.plan.picture import Marks
from areal_compiler.plan.view import ranges
from areal_compiler.review.changes import ANY, Change


def where(node: int, devices) -> str:
    devices = sorted(devices)
    return f"node {node}" + (f", {'devices' if len(devices) > 1 else 'device'} {ranges(devices)}" if devices else "")


def _workers(plan: Plan | None) -> dict[tuple[str, int], object]:
    return {(w.role, w.index): w for w in plan.workers} if plan is not None else {}


def placement(old: Plan | None, new: Plan | None) -> tuple[list[Change], Marks]:
    """Workers that moved to another node or devices, and workers added to or removed from a role both plans have,
    one change per role and pair of nodes; Marks for every worker added, moved or removed (whole roles too)."""
    a, b = _workers(old), _workers(new)
    both = set(old.roles if old else ()) & set(new.roles if new else ())
    marks = Marks()
    groups: dict[tuple, dict] = {}  # (role, event) -> (old node, new node) -> [(index, old devices, new devices)]
    for key in [*b, *(k for k in a if k not in b)]:
        x, y = a.get(key), b.get(key)
        name = f"{key[0]}/{key[1]}"
        if x is not None and y is not None:
            if (x.node, x.devices) == (y.node, y.devices):
                continue
            marks.moved[name] = where(x.node, x.devices)
            event = "moved"
        elif y is not None:
            marks.added.add(name)
            event = "added"
        else:
            marks.removed.append((name, where(x.node, x.devices)))
            event = "removed"
        if key[0] in both:
            groups.setdefault((key[0], event), {}).setdefault((x and x.node, y and y.node), []).append(
                (key[1], x.devices if x else [], y.devices if y else []))
    return [c for (role, event), pairs in groups.items() for c in _summed(role, event, pairs)], marks


MAX_PAIRS = 6  # pairs of nodes a role's workers move between, each said apart; more: one line for the role


def _summed(role: str, event: str, pairs: dict[tuple, list]) -> list[Change]:
    """A change per pair of nodes (old, new) with the devices on each; past MAX_PAIRS, one with only the nodes."""
    if len(pairs) > MAX_PAIRS:
        olds, news = ({pair[i] for pair in pairs if pair[i] is not None} for i in (0, 1))
        members = [m for ms in pairs.values() for m in ms]
        return [_change(role, event, members, olds and f"nodes {ranges(olds)}", news and f"nodes {ranges(news)}")]
    out = []
    for (old_node, new_node), members in pairs.items():
        old = None if old_node is None else where(old_node, {d for _, devices, _ in members for d in devices})
        new = None if new_node is None else where(new_node, {d for _, _, devices in members for d in devices})
        out.append(_change(role, event, members, old, new))
    return out


def _change(role: str, event: str, members: list, old: str | None, new: str | None) -> Change:
    indices = [i for i, _, _ in members]
    if event == "moved":
        covers = tuple(("workers", role, str(i), field) for i in indices for field in ("node", "devices"))
    else:
        covers = tuple(("workers", role, str(i)) for i in indices)
    return Change("placement", f"{role}/{ranges(indices)}", event, old or None, new or None, covers)


def _ports(plan: Plan) -> dict[str, dict[int, tuple]]:
    """role -> worker index -> the ports its processes listen on (a forked role's are its forks')."""
    out: dict[str, dict[int, tuple]] = {}
    for w in plan.workers:
        out.setdefault(w.role, {})[w.index] = (*w.ports, w.agent_port)
        for f in w.forks:
            out.setdefault(f.role, {})[f.index] = tuple(f.ports)
    return out


def _port_text(numbers: set[int]) -> str:
    """A few runs as they are (20000-20011); many as their count and span."""
    runs = ranges(numbers)
    return runs if runs.count(",") < 3 else f"{len(numbers)} in {min(numbers)}-{max(numbers)}"


PORT_FIELDS = tuple(("workers", ANY, ANY, field) for field in ("ports", "agent_port", "forks"))


def ports(old: Plan, new: Plan) -> list[Change]:
    """Per role both plans have: its ports when any of its processes' ports differ. Covers every worker's ports:
    roles on one side only are roles added or removed, and fork lists change with colocation (both in `roles`)."""
    a, b = _ports(old), _ports(new)
    out = []
    for role in (r for r in b if r in a and a[r] != b[r]):
        before, after = (_port_text({p for ps in side[role].values() for p in ps}) for side in (a, b))
        out.append(Change("ports", role, "ports", before, after if after != before else f"{after} (reassigned)"))
    return out + [Change("", "", "ports", None, None, PORT_FIELDS)]
