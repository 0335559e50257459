"""The plan (IR) as frozen dataclasses: roles, workers placed on logical nodes and devices, forks, gate, completion.

Built by plan/build.py from the validated experiment (so nothing here validates again); dumped to plan.json (the
agent's only input) and read by every target and `areal plan`. Plain dataclasses, not pydantic models: building
their validators cost more of a cold compile than the compile itself, and they never saw unchecked input.
Linear in workers: what a role's processes share (command, env, resources) is stated once on the role; each
worker carries only its placement and ports; the agent derives every process's environment from the plan."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

PLAN_VERSION = 3  # 3: ports are planned per logical node (2: unique across the experiment)
DRIVER = "driver"  # the role name of the driver (the controller); a user role may not use it


class Frozen:
    __slots__ = ()

    def dump(self) -> dict:
        """Plain data (dicts, lists, numbers, strings), fields in declaration order: what plan.json holds."""
        return {name: _plain(getattr(self, name)) for name in self.__dataclass_fields__}


def _plain(value):
    if isinstance(value, Frozen):
        return value.dump()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# Fork and Worker, of which there is one per process (100,000 at 8,192 nodes), are slotted and not frozen: a frozen
# dataclass's __init__ sets each field through object.__setattr__, which made building them most of planning.
# Nothing changes a plan after plan/build.py made it, frozen or not.
@dataclass(slots=True)
class Fork(Frozen):
    """A process of a colocated role (fork: true) that a worker's agent starts beside its worker."""

    role: str
    index: int
    ports: list[int]


@dataclass(slots=True)
class Worker(Frozen):
    role: str
    index: int
    node: int
    devices: list[int]
    ports: list[int]  # distinct among the processes of its logical node; other nodes reuse the same numbers
    agent_port: int
    forks: list[Fork]

    @property
    def name(self) -> str:
        return f"{self.role}/{self.index}"


def _workers_data(workers: list[Worker]) -> list[dict]:
    """The workers as plan.json holds them, every dict's keys in sorted order (canonical_json's `built`): only ints
    and role names."""
    return [{"agent_port": w.agent_port, "devices": w.devices,
             "forks": [{"index": f.index, "ports": f.ports, "role": f.role} for f in w.forks],
             "index": w.index, "node": w.node, "ports": w.ports, "role": w.role} for w in workers]


@dataclass(frozen=True)
class RolePlan(Frozen):
    kind: str  # training | inference | helper | driver
    backend: str | None
    workers: int
    devices_per_worker: int
    instance_nodes: int  # inference: nodes one server instance spans
    nodes: list[int]
    colocated_with: str | None
    fork: bool
    image: str | None
    cpu: int
    mem_gb: int
    port_count: int
    argv: list[str]  # the user's cmd split like a shell would (never run by one); the agent appends --port
    env: dict[str, str]  # the user's env_vars
    readiness: str  # http (GET /health on the first port answers 200) | none (running is ready)
    upstream: str | None  # areal: a worker gets upstream's worker arguments; the driver runs under run-trainer
    slurm: dict[str, str | bool]


@dataclass(frozen=True)
class Gate(Frozen):
    role: str
    index: int
    max_head_offpolicyness: int
    max_concurrent_rollouts: int
    consumer_batch_size: int
    queue_size: int


@dataclass(frozen=True)
class Completion(Frozen):
    """How the job ends (decided at run time by the agent's outcome module, the same for every target)."""

    driver: bool  # true: the job ends when the driver exits, with its exit code
    may_fail: list[str]  # roles whose failure does not fail the job


@dataclass(frozen=True)
class Plan(Frozen):
    plan_version: int
    experiment_name: str
    trial_name: str
    run_id: str
    experiment_sha256: str
    accelerator: dict
    nodes: int
    fileroot: str
    areal: dict  # what upstream AReaL's processes are told: experiment_name, trial_name, name_resolve
    runtime: dict
    gate: Gate | None
    completion: Completion
    roles: dict[str, RolePlan]
    workers: list[Worker]
    secrets: dict[str, dict]
    targets: dict[str, dict]

    @property
    def name(self) -> str:
        """The run name: <experiment>/<trial>."""
        return f"{self.experiment_name}/{self.trial_name}"

    @cached_property
    def json_text(self) -> str:
        """plan.json's text, serialized once however many targets carry it: canonical_json of dump(), with the
        workers (nearly all of it) built in canonical form rather than walked (_workers_data)."""
        from areal_compiler.canonical import canonical_json  # pydantic-core's encoder: not for the run verbs

        data = {name: _plain(getattr(self, name)) for name in self.__dataclass_fields__ if name != "workers"}
        return canonical_json({**data, "workers": _workers_data(self.workers)}, built="workers")

    @cached_property
    def json_bytes(self) -> bytes:
        """plan.json's bytes, encoded once for every target folder that carries them."""
        return self.json_text.encode()

    @cached_property
    def json_sha256(self) -> str:
        return hashlib.sha256(self.json_bytes).hexdigest()

    def to_json(self) -> str:
        return self.json_text

    @cached_property
    def node_workers(self) -> list[list[Worker]]:
        """The workers of each logical node, in plan order (the driver's on node 0)."""
        out: list[list[Worker]] = [[] for _ in range(self.nodes)]
        for w in self.workers:
            out[w.node].append(w)
        return out

    def worker(self, role: str, index: int) -> Worker:
        return next(w for w in self.workers if w.role == role and w.index == index)

    def workers_of(self, role: str) -> list[Worker]:
        return [w for w in self.workers if w.role == role]
