"""The plan (IR): every worker of every role, placed on logical nodes and devices, with ports, env and forks.

Built by `resolve()` from a checked experiment; the only input of every target and of `areal plan`."""
from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict

from areal_compiler import contract
from areal_compiler.diagnostics import Diagnostic
from areal_compiler.source import Source
from areal_compiler.spec.catalog import CATALOG
from areal_compiler.spec.models import Experiment
from areal_compiler.spec.shape import RoleShape, role_shape

PLAN_VERSION = 1


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fork(Frozen):
    role: str
    index: int
    argv: list[str]
    env: dict[str, str]
    ports: list[int]
    unset: list[str]  # the parent worker's role-scoped variables (rank, master, instance) it must not inherit


class Worker(Frozen):
    role: str
    index: int
    node: int
    devices: list[int]
    cpu: int
    mem_gb: int
    ports: list[int]
    agent_port: int
    argv: list[str]
    env: dict[str, str]
    forks: list[Fork]
    secret_files: dict[str, str]


class RolePlan(Frozen):
    kind: str
    backend: str | None
    workers: int
    devices_per_worker: int
    nodes: list[int]
    colocated_with: str | None
    fork: bool
    image: str | None
    cpu: int
    mem_gb: int
    port_count: int
    slurm: dict[str, str | bool]


class Gate(Frozen):
    role: str
    index: int
    max_head_offpolicyness: int
    max_concurrent_rollouts: int
    consumer_batch_size: int
    queue_size: int


class Plan(Frozen):
    plan_version: int
    experiment_name: str
    trial_name: str
    run_id: str
    experiment_sha256: str
    accelerator: dict
    nodes: int
    fileroot: str
    runtime: dict
    gate: Gate | None
    roles: dict[str, RolePlan]
    workers: list[Worker]
    secrets: dict[str, dict]
    targets: dict[str, dict]

    def to_json(self) -> str:
        return canonical_json(self.model_dump(mode="json"))

    def worker(self, role: str, index: int) -> Worker:
        return next(w for w in self.workers if w.role == role and w.index == index)


def canonical_json(data) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def experiment_sha256(exp: Experiment) -> str:
    """Hash of the normalized experiment: the root of every stable id.

    Normalized = parsed, key order fixed, values equal to their defaults left out; so writing a default
    explicitly changes nothing, and a later version adding a defaulted field keeps every id."""
    return hashlib.sha256(canonical_json(exp.model_dump(mode="json", exclude_defaults=True)).encode()).hexdigest()


class PlanError(Exception):
    def __init__(self, diagnostics: list[Diagnostic]):
        super().__init__("; ".join(d.message for d in diagnostics))
        self.diagnostics = diagnostics


def resolve(exp: Experiment, source: Source) -> Plan:
    """Place every role; raises PlanError (located) when the roles cannot be packed onto the nodes."""
    acc = CATALOG[exp.compute.accelerator]
    per_node = acc.devices_per_node
    nodes = exp.compute.num_accelerators // per_node if per_node else 1
    shapes = {name: role_shape(name, role, per_node) for name, role in exp.roles.items()}
    placement = place(exp, source, shapes, nodes, per_node)
    ports = PortCounter(exp.runtime.base_port)
    sha = experiment_sha256(exp)
    gate = _gate(exp, shapes)
    layout = contract.Layout(exp, acc, shapes, placement, nodes, sha[:12], gate)
    workers = [contract.worker(layout, name, index, ports)
               for name, shape in shapes.items() if shape.is_placed for index in range(shape.workers)]
    workers = contract.with_addresses(layout, workers)
    roles = {name: _role_plan(exp, shapes, placement, name) for name in shapes}
    return Plan(
        plan_version=PLAN_VERSION, experiment_name=exp.experiment_name, trial_name=exp.trial_name,
        run_id=layout.run_id, experiment_sha256=sha, accelerator=acc.to_json(), nodes=nodes,
        fileroot=exp.fileroot, runtime=exp.runtime.model_dump(mode="json"), gate=gate, roles=roles,
        workers=workers, secrets={k: v.model_dump(mode="json", exclude_none=True) for k, v in exp.secrets.items()},
        targets={"slurm": _slurm_job(exp), "kubernetes": exp.kubernetes.model_dump(mode="json"),
                 "local": exp.local.model_dump(mode="json")})


class PortCounter:
    """Hands out ports in plan order, unique across the experiment, so every node and the local target agree."""

    def __init__(self, base: int):
        self.next = base

    def take(self, count: int) -> list[int]:
        ports = list(range(self.next, self.next + count))
        self.next += count
        return ports


def place(exp: Experiment, source: Source, shapes: dict[str, RoleShape], nodes: int,
          per_node: int) -> dict[str, list[tuple[int, list[int]]]]:
    """(node, devices) per worker of every non-colocated role. Whole-node roles first, then first-fit packing."""
    free = [list(range(per_node)) for _ in range(nodes)]
    placed = {n: s for n, s in shapes.items() if s.is_placed}
    whole = [n for n, s in placed.items() if per_node and s.devices and s.devices % per_node == 0]
    order = whole + [n for n in placed if n not in whole]
    out: dict[str, list[tuple[int, list[int]]]] = {}
    for name in order:
        shape = placed[name]
        if exp.compute.allow_device_sharing:
            free = [list(range(per_node)) for _ in range(nodes)]
        if shape.devices_per_worker == 0:
            out[name] = [(i % nodes, []) for i in range(shape.workers)]
            continue
        slots = _fit(free, shape, name in whole, per_node)
        if slots is None:
            raise PlanError([source.diagnostic(
                "E404", f"role `{name}` ({shape.workers} x {shape.devices_per_worker} devices) does not fit on the "
                        "devices the other roles leave free", ("roles", name),
                "resize the roles so each worker fits on one node", key=True)])
        out[name] = slots
    return {n: out[n] for n in placed}


def _fit(free: list[list[int]], shape: RoleShape, whole: bool, per_node: int):
    slots = []
    for _ in range(shape.workers):
        need = shape.devices_per_worker
        if whole and slots and len(free[slots[-1][0]]) >= need:
            node = slots[-1][0]  # keep filling the node this role already opened
        else:
            candidates = [n for n, devs in enumerate(free) if len(devs) == per_node or not whole and len(devs) >= need]
            if not candidates:
                return None
            node = candidates[0]
        devices, free[node] = free[node][:need], free[node][need:]
        slots.append((node, devices))
    return slots


def _gate(exp: Experiment, shapes: dict[str, RoleShape]) -> Gate | None:
    s = exp.staleness
    if s is None:
        return None
    owners = [s.gate_role] if s.gate_role else \
        [n for n, sh in shapes.items() if sh.is_placed and sh.kind == "training"] or \
        [n for n, sh in shapes.items() if sh.is_placed]
    mcr = s.max_concurrent_rollouts or s.consumer_batch_size  # 0 or omitted means the default, as in AReaL
    queue = s.queue_size or 16 * mcr
    return Gate(role=owners[0], index=0, max_head_offpolicyness=s.max_head_offpolicyness,
                max_concurrent_rollouts=mcr, consumer_batch_size=s.consumer_batch_size, queue_size=queue)


def _role_plan(exp: Experiment, shapes: dict[str, RoleShape], placement, name: str) -> RolePlan:
    shape, role = shapes[name], exp.roles[name]
    owner = shape.colocated_with or name
    workers = shape.workers if shape.has_processes else 0
    if shape.colocated_with and shape.fork:
        workers = shapes[owner].workers
    slurm = {k: v for k, v in (role.slurm.model_dump(exclude_none=True) if role.slurm else {}).items()}
    return RolePlan(
        kind=shape.kind, backend=shape.backend, workers=workers,
        devices_per_worker=shapes[owner].devices_per_worker if shape.colocated_with else shape.devices_per_worker,
        nodes=sorted({node for node, _ in placement[owner]}), colocated_with=shape.colocated_with,
        fork=bool(shape.colocated_with) and shape.fork, image=role.scheduling_spec.image or exp.image,
        cpu=role.scheduling_spec.cpu, mem_gb=role.scheduling_spec.mem, port_count=role.scheduling_spec.port_count, slurm=slurm)


def _slurm_job(exp: Experiment) -> dict:
    return exp.slurm.model_dump(mode="json", exclude_none=True)

