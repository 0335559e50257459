"""A role's derived shape: its kind, worker count and devices per worker, from its backend or replicas.

Computed the same way by check.py (to validate) and plan.py (to place), so the two never disagree."""
from __future__ import annotations

from dataclasses import dataclass

from areal_compiler.spec.allocation import AllocationError, Single, parse_allocation
from areal_compiler.spec.records import Role


@dataclass(frozen=True)
class RoleShape:
    name: str
    kind: str  # "inference" | "training" | "helper"
    backend: str | None  # sglang | vllm | fsdp | megatron | archon
    workers: int  # processes of this role
    devices_per_worker: int
    colocated_with: str | None  # target role when scheduling_strategy.type is colocation
    fork: bool  # colocated with fork: true (own processes on the target's devices)
    instance_nodes: int = 1  # inference: nodes one server instance spans (SGLang multi-node)
    allocation: Single | None = None

    @property
    def devices(self) -> int:
        return self.workers * self.devices_per_worker

    @property
    def has_processes(self) -> bool:
        """False for a colocated role with fork: false, which runs inside its target's processes."""
        return self.colocated_with is None or self.fork

    @property
    def is_placed(self) -> bool:
        """True when the role takes devices of its own (not colocated)."""
        return self.colocated_with is None


def parse_role_backend(backend: str) -> Single:
    """A role's backend names exactly one allocation (no `+` or `|`: use scheduling_strategy for that)."""
    allocation = parse_allocation(backend)
    if len(allocation.groups) != 1 or len(allocation.groups[0].members) != 1:
        raise AllocationError("E408", "a role's backend names one allocation, not several",
                              max(backend.find("+"), backend.find("|"), 0),
                              "give each role its own backend; share devices with "
                              "scheduling_strategy: {type: colocation, target: ...}")
    return allocation.groups[0].members[0]


def role_shape(name: str, role: Role, devices_per_node: int) -> RoleShape:
    """The shape of a role whose backend is already known to parse (check.py reports parse errors)."""
    strategy = role.scheduling_strategy
    colocated = strategy.target if strategy.type == "colocation" else None
    if role.backend is None:
        gpu = role.scheduling_spec.gpu or 0
        return RoleShape(name, "helper", None, role.replicas or 1, gpu, colocated, strategy.fork)
    single = parse_role_backend(role.backend)
    workers, per_worker, nodes = backend_shape(single, devices_per_node)
    return RoleShape(name, single.kind, single.backend, workers, per_worker, colocated, strategy.fork,
                     instance_nodes=nodes, allocation=single)


def backend_shape(single: Single, devices_per_node: int) -> tuple[int, int, int]:
    """(workers, devices per worker, nodes one instance spans) of one allocation: a training worker per device; an
    inference worker per instance (t*p devices), or per node of an SGLang instance larger than a node."""
    if single.kind == "training":
        return single.world, 1, 1
    size = single.dims.t * single.dims.p
    if devices_per_node and size > devices_per_node and size % devices_per_node == 0:
        nodes = size // devices_per_node
        return single.dims.d * nodes, devices_per_node, nodes
    return single.dims.d, size, 1
