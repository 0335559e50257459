"""The worker environment contract: the variables, argv and ports each worker and forked child is given.

Called by plan.py while resolving; documented in the README ("Worker environment"), a public interface."""
from __future__ import annotations

import shlex
from dataclasses import dataclass

from areal_compiler.spec.catalog import Accelerator
from areal_compiler.spec.models import Experiment
from areal_compiler.spec.shape import RoleShape


# Variables that describe one role's process group: a forked child of another role never inherits them.
ROLE_SCOPED = frozenset({"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                         "AREAL_INSTANCE_INDEX", "AREAL_INSTANCE_NODE_RANK", "AREAL_INSTANCE_NODES"})


@dataclass(frozen=True)
class Layout:
    """Everything the contract needs about the resolved experiment."""

    exp: Experiment
    acc: Accelerator
    shapes: dict[str, RoleShape]
    placement: dict[str, list[tuple[int, list[int]]]]  # role -> (node, devices) per worker
    nodes: int
    digest: str
    gate: object  # plan.Gate | None

    @property
    def run_id(self) -> str:
        return f"{self.exp.experiment_name}-{self.exp.trial_name}-{self.digest[:8]}"

    def forks_of(self, target: str) -> list[str]:
        return [n for n, s in self.shapes.items() if s.colocated_with == target and s.fork]


def env_suffix(role: str) -> str:
    return role.upper().replace("-", "_")


def host(node: int) -> str:
    return "{host%d}" % node


def argv_of(cmd: str) -> list[str]:
    """The user's cmd split like a shell would (never run by one), plus the planned port."""
    return shlex.split(cmd) + ["--port", "{port0}"]


def worker(layout: Layout, role: str, index: int, ports):
    from areal_compiler.plan import Fork, Worker

    exp = layout.exp
    spec = exp.roles[role].scheduling_spec
    node, devices = layout.placement[role][index]
    own_ports = ports.take(spec.port_count)
    agent_port = ports.take(1)[0]
    env = _identity(layout, role, index, node)
    if layout.acc.visibility_env:
        env[layout.acc.visibility_env] = ",".join(str(d) for d in devices)
    env.update(spec.env_vars)
    forks = []
    for fork_role in layout.forks_of(role):
        fork_spec = exp.roles[fork_role].scheduling_spec
        fork_env = _identity(layout, fork_role, index, node)
        for key in ("AREAL_EXPERIMENT_NAME", "AREAL_TRIAL_NAME", "AREAL_RUN_ID", "AREAL_NODE_RANK",
                    "AREAL_NUM_NODES", "AREAL_HOST"):
            fork_env.pop(key)  # inherited from the worker it is forked from
        fork_env.update(fork_spec.env_vars)
        cmd = exp.roles[fork_role].cmd or exp.roles[role].cmd
        forks.append(Fork(role=fork_role, index=index, argv=argv_of(cmd), env=fork_env,
                          ports=ports.take(fork_spec.port_count), unset=[]))
    return Worker(role=role, index=index, node=node, devices=devices, cpu=spec.cpu, mem_gb=spec.mem,
                  ports=own_ports, agent_port=agent_port, argv=argv_of(exp.roles[role].cmd), env=env, forks=forks,
                  secret_files={k: s.file for k, s in exp.secrets.items()})


def _identity(layout: Layout, role: str, index: int, node: int) -> dict[str, str]:
    exp, shape = layout.exp, layout.shapes[role]
    owner = shape.colocated_with or role
    workers = layout.shapes[owner].workers if shape.colocated_with else shape.workers
    env = {
        "AREAL_EXPERIMENT_NAME": exp.experiment_name, "AREAL_TRIAL_NAME": exp.trial_name,
        "AREAL_RUN_ID": layout.run_id, "AREAL_ROLE": role, "AREAL_WORKER_INDEX": str(index),
        "AREAL_ROLE_WORKERS": str(workers), "AREAL_NODE_RANK": str(node), "AREAL_NUM_NODES": str(layout.nodes),
        "AREAL_HOST": host(node),
    }
    if shape.kind == "training":
        same_node = [i for i, (n, _) in enumerate(layout.placement[owner]) if n == node]
        env.update({"RANK": str(index), "WORLD_SIZE": str(workers), "LOCAL_RANK": str(same_node.index(index)),
                    "LOCAL_WORLD_SIZE": str(len(same_node))})
    if shape.kind == "inference" and shape.instance_nodes > 1:
        env.update({"AREAL_INSTANCE_INDEX": str(index // shape.instance_nodes),
                    "AREAL_INSTANCE_NODE_RANK": str(index % shape.instance_nodes),
                    "AREAL_INSTANCE_NODES": str(shape.instance_nodes)})
    return env


def with_addresses(layout: Layout, workers: list) -> list:
    """Second pass: variables that name other processes' ports (addresses, masters, the gate)."""
    processes: dict[str, list[tuple[int, list[int]]]] = {}  # role -> (node, ports) per process
    for w in workers:
        processes.setdefault(w.role, []).append((w.node, w.ports))
        for f in w.forks:
            processes.setdefault(f.role, []).append((w.node, f.ports))
    shared = {f"AREAL_ADDRS_{env_suffix(role)}": ",".join(f"{host(n)}:{p[0]}" for n, p in procs if p)
              for role, procs in processes.items()}
    if layout.gate is not None:
        gate = next(w for w in workers if w.role == layout.gate.role and w.index == layout.gate.index)
        shared["AREAL_GATE_URL"] = f"http://{host(gate.node)}:{gate.agent_port}"
    out = []
    for w in workers:
        env = {**w.env, **shared, **_master(layout, w.role, processes)}
        forks = []
        for f in w.forks:
            fork_env = {**f.env, **_master(layout, f.role, processes)}
            unset = sorted(k for k in env if k in ROLE_SCOPED and k not in fork_env)
            forks.append(f.model_copy(update={"env": fork_env, "unset": unset}))
        out.append(w.model_copy(update={"env": env, "forks": forks}))
    return out


def _master(layout: Layout, role: str, processes) -> dict[str, str]:
    if layout.shapes[role].kind != "training":
        return {}
    node, ports = processes[role][0]
    return {"MASTER_ADDR": host(node), "MASTER_PORT": str(ports[1])}
