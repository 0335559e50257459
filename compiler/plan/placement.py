"""Placement: which logical node and devices each worker of every role that owns devices gets.

Called by plan/build.py; whole-node roles first, then first-fit packing without overlap."""
from __future__ import annotations

from areal_compiler.source import Source
from areal_compiler.spec.records import Experiment
from areal_compiler.spec.shape import RoleShape

Slots = list[tuple[int, list[int]]]  # (node, devices) per worker


class PlacementError(Exception):
    def __init__(self, role: str, shape: RoleShape):
        super().__init__(role)
        self.role, self.shape = role, shape


def place(exp: Experiment, shapes: dict[str, RoleShape], nodes: int, per_node: int) -> dict[str, Slots]:
    """(node, devices) per worker of every non-colocated role; raises PlacementError naming the role that does
    not fit on the devices the others leave free."""
    free = [list(range(per_node)) for _ in range(nodes)]
    placed = {n: s for n, s in shapes.items() if s.is_placed}
    whole = [n for n, s in placed.items() if per_node and s.devices and s.devices % per_node == 0]
    out: dict[str, Slots] = {}
    for name in whole + [n for n in placed if n not in whole]:
        shape = placed[name]
        if exp.compute.allow_device_sharing:
            free = [list(range(per_node)) for _ in range(nodes)]
        if shape.devices_per_worker == 0:
            out[name] = [(i % nodes, []) for i in range(shape.workers)]
            continue
        slots = _fit(free, shape, name in whole, per_node)
        if slots is None:
            raise PlacementError(name, shape)
        out[name] = slots
    return {n: out[n] for n in placed}


def _fit(free: list[list[int]], shape: RoleShape, whole: bool, per_node: int) -> Slots | None:
    """First fit, in one pass over the nodes: free devices only shrink, so a node skipped for this role's size
    never fits a later worker of it (linear in nodes + workers)."""
    slots: Slots = []
    need, node = shape.devices_per_worker, 0
    for _ in range(shape.workers):
        if not (whole and slots and len(free[slots[-1][0]]) >= need):  # else: fill the node this role opened
            while node < len(free) and not (len(free[node]) == per_node or not whole and len(free[node]) >= need):
                node += 1
            if node == len(free):
                return None
        at = slots[-1][0] if whole and slots and len(free[slots[-1][0]]) >= need else node
        devices, free[at] = free[at][:need], free[at][need:]
        slots.append((at, devices))
    return slots


def placement_diagnostic(source: Source, exc: PlacementError):
    return source.diagnostic(
        "E404", f"role `{exc.role}` ({exc.shape.workers} x {exc.shape.devices_per_worker} devices) does not fit on the "
                "devices the other roles leave free", ("roles", exc.role),
        "resize the roles so each worker fits on one node", key=True)
