"""PlannedScheduler: upstream AReaL's Scheduler over the compiled plan, for its unchanged controller and trainers.

Created by run_trainer.py (in place of the trainers' Local/Ray/Slurm schedulers) or by a driver script directly.
Workers are the plan's, already started by our agents: creating them attaches (checking role, replicas, devices
and ports against the plan), deleting them leaves the processes to the job. Engine creation and calls, worker env,
/configure and readiness polling are upstream LocalScheduler's own code, inherited unchanged. Tested with areal
1.0.4 (tests/areal/test_planned_scheduler.py)."""
from __future__ import annotations

import sys
import time

from areal.api import Job, Worker
from areal.api.cli_args import NameResolveConfig
from areal.infra.scheduler.exceptions import WorkerCreationError, WorkerNotFoundError
from areal.infra.scheduler.local import LocalScheduler, WorkerInfo
from areal.utils import logging

from .workers import (Planned, PlanMismatch, agent_call, agent_token, check_config, check_request, fork_argv,
                      load_plan, node_hosts, planned_processes)

logger = logging.getLogger("PlannedScheduler")


class PlannedScheduler(LocalScheduler):
    """LocalScheduler whose workers are the compiled plan's. Its __init__ replaces LocalScheduler's, which would
    clear the trial's name_resolve subtree (the running workers' registrations) and pick GPUs of this machine."""

    def __init__(self, plan_file: str | None = None, hosts: str | None = None, *, exp_config=None,
                 startup_timeout: float = 300.0, health_check_interval: float = 1.0, fork_timeout: float = 60.0):
        self.plan = load_plan(plan_file)
        self.hosts = node_hosts(self.plan, hosts)
        if exp_config is not None:
            check_config(self.plan, exp_config)
        self.exp_config = exp_config
        areal = self.plan["areal"]
        self.experiment_name, self.trial_name = areal["experiment_name"], areal["trial_name"]
        self.fileroot = self.plan["fileroot"]
        self.name_resolve_config = NameResolveConfig(**areal["name_resolve"])
        self.enable_tms_offload = False
        self.gpu_devices = list(range(int(self.plan["accelerator"].get("devices_per_node") or 0)))
        self.startup_timeout, self.health_check_interval = startup_timeout, health_check_interval
        self.fork_timeout = fork_timeout
        self._workers: dict[str, list[WorkerInfo]] = {}
        self._colocated_roles: dict[str, str] = {}
        self._allocated_ports: set[int] = set()
        self._gpu_counter = 0

    @property
    def n_gpus_per_node(self) -> int:
        return int(self.plan["accelerator"].get("devices_per_node") or 0)

    def create_workers(self, job: Job, *args, **kwargs) -> list[str]:
        """Attach to the planned workers of job.role (no process is started)."""
        role, strategy = job.role, job.scheduling_strategy
        colocated = getattr(strategy.type, "value", strategy.type) == "colocation"
        target = strategy.target if colocated else None
        task = job.tasks[0] if job.tasks else None
        try:
            check_request(self.plan, role, job.replicas, task.gpu if task else None,
                          task.port_count if task else None, target, bool(colocated and strategy.fork))
        except PlanMismatch as exc:
            raise WorkerCreationError(role, "The request does not match the compiled plan", str(exc)) from None
        if role in self._workers or role in self._colocated_roles:
            raise WorkerCreationError(role, "Worker group already exists", "each role is attached once")
        if target and not strategy.fork:  # runs inside the target's processes: reuse its workers
            self._colocated_roles[role] = target
            return [w.worker.id for w in self._workers_of(target)]
        self._attach(role, planned_processes(self.plan, role, self.hosts))
        if target:
            self._colocated_roles[role] = target
        return [w.worker.id for w in self._workers[role]]

    def _attach(self, role: str, processes: list[Planned]) -> None:
        self._workers[role] = [WorkerInfo(worker=Worker(id=f"{role}/{p.index}", ip=p.host,
                                                        worker_ports=[str(port) for port in p.ports]),
                                          process=None, role=role, gpu_devices=list(p.devices),
                                          created_at=time.time(), log_file="") for p in processes]
        logger.info(f"Attached to {len(processes)} planned worker(s) of role '{role}'")
        if self.exp_config is not None:
            for rank, info in enumerate(self._workers[role]):
                self._configure_worker(info, rank)

    def _workers_of(self, role: str) -> list[WorkerInfo]:
        if role not in self._workers:
            raise WorkerNotFoundError(role)
        return self._workers[role]

    def fork_workers(self, role: str, target_role: str, command: str | None = None) -> list[str]:
        """Attach to the forks the plan declares for `role`, else fork one per target worker through its agent."""
        targets = self._workers_of(target_role)
        if role in self.plan["roles"]:
            declared = planned_processes(self.plan, role, self.hosts)
            if self.plan["roles"][role].get("colocated_with") != target_role or len(declared) != len(targets):
                raise WorkerCreationError(role, "The fork does not match the compiled plan",
                                          f"roles.{role} must be colocated with {target_role} (fork: true)")
            self._attach(role, declared)
        else:
            parents = planned_processes(self.plan, target_role, self.hosts)
            self._workers[role] = [self._fork_via_agent(role, i, parent, command) for i, parent in enumerate(parents)]
        self._colocated_roles[role] = target_role
        ids = [w.worker.id for w in self._workers[role]]
        self.get_workers(role, timeout=self.fork_timeout)
        return ids

    def _fork_via_agent(self, role: str, index: int, parent: Planned, command: str | None) -> WorkerInfo:
        """Upstream's fork (ports from the guard, then /fork with upstream's raw_cmd), sent to our agent with the
        run's token; the agent checks the command against the plan unless runtime.fork_commands is `any`."""
        token = agent_token()
        port_count = int(self.plan["roles"][parent.role]["port_count"])
        ports = agent_call(parent.agent, "/alloc_ports", {"count": port_count}, token)["ports"]
        raw_cmd = fork_argv(command or "areal.infra.rpc.rpc_server", ports[0], self.plan["areal"], self.fileroot,
                            role, index, sys.executable)
        agent_call(parent.agent, "/fork", {"role": role, "worker_index": index, "raw_cmd": raw_cmd,
                                           "ports": ports}, token)
        worker = Worker(id=f"{role}/{index}", ip=parent.host, worker_ports=[str(p) for p in ports])
        return WorkerInfo(worker=worker, process=None, role=role, gpu_devices=list(parent.devices),
                          created_at=time.time(), log_file="")

    def delete_workers(self, role: str | None = None, reverse_order: bool = False):
        """Forget the workers; the job (its agents and driver) owns their lifecycle, so nothing is killed."""
        roles = [role] if role is not None else list(dict.fromkeys([*self._colocated_roles, *self._workers]))
        for name in roles:
            self._colocated_roles.pop(name, None)
            self._workers.pop(name, None)
        logger.info(f"Detached from role(s) {roles}; the job stops its workers")
