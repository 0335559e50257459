"""The resolver: a checked experiment -> the plan (placement, ports, forks, gate, driver, completion, stable ids).

Called by the pipeline (`resolve`); the only place where placement and ports are decided."""
from __future__ import annotations

import hashlib
import shlex

from areal_compiler.canonical import canonical_json
from areal_compiler.diagnostics import Diagnostic
from areal_compiler.plan.model import DRIVER, PLAN_VERSION, Completion, Fork, Gate, Plan, RolePlan, Worker
from areal_compiler.plan.placement import PlacementError, place, placement_diagnostic
from areal_compiler.source import Source
from areal_compiler.spec.catalog import CATALOG
from areal_compiler.spec.records import Experiment
from areal_compiler.spec.shape import RoleShape, role_shape


def experiment_sha256(exp: Experiment, inputs: dict | None = None) -> str:
    """Hash of the normalized experiment: the root of every stable id.

    Normalized = parsed, key order fixed, values equal to their defaults left out; so writing a default
    explicitly changes nothing, and a later version adding a defaulted field keeps every id. The files it names
    (INPUTS: a site template) count with their bytes."""
    text = canonical_json(exp.dump(exclude_defaults=True))
    if inputs:
        text += canonical_json({".".join(setting): file.sha256 for setting, file in sorted(inputs.items())})
    return hashlib.sha256(text.encode()).hexdigest()


class PlanError(Exception):
    def __init__(self, diagnostics: list[Diagnostic]):
        super().__init__("; ".join(d.message for d in diagnostics))
        self.diagnostics = diagnostics


LAST_PORT = 65535
FIRST_UNPRIVILEGED = 1024  # ports below it need root to listen on


class Ports:
    """Hands out ports per logical node in plan order: the processes of one node get distinct ports and every node
    starts at base_port, since a port belongs to a host (agents move apart the ports of nodes that share a host)."""

    def __init__(self, base: int, nodes: int):
        self.base, self.next = base, [base] * nodes

    def worker(self, node: int, count: int, forks: list[int]) -> tuple[list[int], int, list[list[int]]]:
        """A worker's own ports, its agent's port and each of its forked processes' ports, in that order."""
        start = self.next[node]
        own, agent, start = list(range(start, start + count)), start + count, start + count + 1
        forked = []
        for size in forks:
            forked.append(list(range(start, start + size)))
            start += size
        self.next[node] = start
        return own, agent, forked

    def busiest(self) -> tuple[int, int]:
        """(node, how many ports it uses) of the node that uses the most (the first such node)."""
        used = max(self.next)
        return self.next.index(used), used - self.base


def resolve(exp: Experiment, source: Source) -> Plan:
    """Place every role; raises PlanError (located) when the roles cannot be packed onto the nodes."""
    acc = CATALOG[exp.compute.accelerator]
    per_node = acc.devices_per_node
    nodes = exp.compute.num_accelerators // per_node if per_node else 1
    shapes = {name: role_shape(name, role, per_node) for name, role in exp.roles.items()}
    try:
        placement = place(exp, shapes, nodes, per_node)
    except PlacementError as exc:
        raise PlanError([placement_diagnostic(source, exc)]) from None
    sha = experiment_sha256(exp, source.inputs)
    ports = Ports(exp.runtime.base_port, nodes)
    workers = _workers(exp, shapes, placement, ports)
    roles = {name: _role_plan(exp, shapes, placement, name) for name in shapes}
    if exp.driver is not None:
        roles[DRIVER] = _driver_role(exp)
        workers.append(Worker(role=DRIVER, index=0, node=0, devices=[], ports=[], agent_port=ports.worker(0, 0, [])[1],
                              forks=[]))
    node, used = ports.busiest()
    if exp.runtime.base_port + used - 1 > LAST_PORT:
        raise PlanError([_ports_diagnostic(source, exp, workers, node, used)])
    return Plan(
        plan_version=PLAN_VERSION, experiment_name=exp.experiment_name, trial_name=exp.trial_name,
        run_id=f"{exp.experiment_name}-{exp.trial_name}-{sha[:8]}", experiment_sha256=sha,
        accelerator=acc.to_json(), nodes=nodes, fileroot=exp.fileroot,
        areal={"experiment_name": exp.areal.experiment_name or exp.experiment_name,
               "trial_name": exp.areal.trial_name or exp.trial_name,
               "name_resolve": exp.areal.name_resolve.dump()},
        runtime=exp.runtime.dump(),
        gate=_gate(exp, shapes),
        completion=Completion(driver=exp.driver is not None,
                              may_fail=sorted(n for n, r in exp.roles.items() if r.may_fail)),
        roles=roles, workers=workers,
        secrets={k: v.dump(exclude_none=True) for k, v in exp.secrets.items()},
        targets={"slurm": _slurm(exp, source.inputs),
                 "kubernetes": exp.kubernetes.dump(), "local": exp.local.dump(),
                 "ray": exp.ray.dump(exclude_none=True)})


def _workers(exp: Experiment, shapes: dict[str, RoleShape], placement, ports: Ports) -> list[Worker]:
    """Every worker of the roles that own devices, in role then index order, with its ports and forked processes."""
    forks_of: dict[str, list[str]] = {}
    for name, shape in shapes.items():
        if shape.colocated_with and shape.fork:
            forks_of.setdefault(shape.colocated_with, []).append(name)
    workers = []
    for name, shape in shapes.items():
        if not shape.is_placed:
            continue
        forks = forks_of.get(name, [])
        count, counts = exp.roles[name].scheduling_spec.port_count, \
            [exp.roles[f].scheduling_spec.port_count for f in forks]
        for index, (node, devices) in enumerate(placement[name]):
            own, agent, forked = ports.worker(node, count, counts)
            workers.append(Worker(name, index, node, devices, own, agent,
                                  [Fork(f, index, p) for f, p in zip(forks, forked)]))
    return workers


def _ports_diagnostic(source: Source, exp: Experiment, workers: list[Worker], node: int, used: int):
    """E471 for the node whose ports do not fit above base_port: a lower base_port when one would do, else the
    role that takes most of that node's ports (no base_port can help it)."""
    base = exp.runtime.base_port
    if used <= LAST_PORT + 1 - FIRST_UNPRIVILEGED:
        return source.diagnostic(
            "E471", f"base_port {base} leaves room for {LAST_PORT + 1 - base} ports, but logical node {node} uses "
                    f"{used} (its workers', forked processes' and agents' ports)", ("runtime", "base_port"),
            f"use a base_port from {FIRST_UNPRIVILEGED} to {LAST_PORT + 1 - used}")
    taken: dict[str, int] = {}
    for w in workers:
        if w.node == node:
            taken[w.role] = taken.get(w.role, 0) + len(w.ports) + 1
            for f in w.forks:
                taken[f.role] = taken.get(f.role, 0) + len(f.ports)
    role = max(taken, key=taken.get)
    path = ("roles", role, "scheduling_spec", "port_count") if role in exp.roles else ("driver",)
    return source.diagnostic(
        "E471", f"logical node {node} uses {used} ports ({taken[role]} of them role `{role}`'s, with its agents'): "
                f"more than one host has from port {FIRST_UNPRIVILEGED} up ({LAST_PORT + 1 - FIRST_UNPRIVILEGED})",
        path, f"give `{role}` fewer ports per process (scheduling_spec.port_count) or fewer processes per node",
        key=True)


def _slurm(exp: Experiment, inputs: dict) -> dict:
    """The job-wide Slurm settings; a site template as its path, the sha256 of its bytes and its text."""
    out = exp.slurm.dump(exclude_none=True)
    site = inputs.get(("slurm", "template"))
    if site is not None:
        out["template"] = {"path": site.path, "sha256": site.sha256, "text": site.text}
    return out


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
    cmd = role.cmd or (exp.roles[owner].cmd if shape.colocated_with else None) or ""
    return RolePlan(
        kind=shape.kind, backend=shape.backend, workers=workers,
        devices_per_worker=shapes[owner].devices_per_worker if shape.colocated_with else shape.devices_per_worker,
        instance_nodes=shape.instance_nodes, nodes=sorted({node for node, _ in placement[owner]}),
        colocated_with=shape.colocated_with, fork=bool(shape.colocated_with) and shape.fork,
        image=role.scheduling_spec.image or exp.image, cpu=role.scheduling_spec.cpu, mem_gb=role.scheduling_spec.mem,
        port_count=role.scheduling_spec.port_count, argv=shlex.split(cmd), env=dict(role.scheduling_spec.env_vars),
        readiness=role.readiness, upstream=role.upstream,
        slurm=role.slurm.dump(exclude_none=True) if role.slurm else {})


def _driver_role(exp: Experiment) -> RolePlan:
    spec = exp.driver.scheduling_spec
    return RolePlan(kind="driver", backend=None, workers=1, devices_per_worker=0, instance_nodes=1, nodes=[0],
                    colocated_with=None, fork=False, image=spec.image or exp.image, cpu=spec.cpu, mem_gb=spec.mem,
                    port_count=0, argv=shlex.split(exp.driver.cmd), env=dict(spec.env_vars), readiness="none",
                    upstream=exp.driver.upstream, slurm={})
