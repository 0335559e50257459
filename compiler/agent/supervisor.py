"""The supervisor: runs one planned worker (and its forked children), beats, serves HTTP, stops in order.

Called by cli.py `supervise` and by in-process callers through supervise(); detached = spawn that command."""
from __future__ import annotations

import os
import re
import queue
import signal
import sys
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Dict, List, Optional

from .children import Child, ChildTable, health_ok
from .client import token_from_env
from .gate import EventLog, StalenessGate
from .contract import address_lists, fork_env, own_bundle, readiness, run_trainer_argv, worker_argv, worker_env
from .lists import place_lists
from .plan import (DEFAULT_RUNTIME, PlanError, allocated_devices, find_worker, http_url, load_plan, node_host,
                   node_hosts, parse_worker_spec, read_secrets, runtime_settings, secret_files)
from .policy import is_declared

ROLE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # also keeps state and log paths inside the run dir
from .procs import (become_subreaper, exit_code, kill_stray_children, reap_orphans, spawn, spawn_error_code,
                    stop_groups)
from .server import AgentServer, HttpError
from .state import FAILED, STOPPED, StateFile, state_path


class Supervisor:
    """One agent: the planned worker ROLE/INDEX, its forked children, heartbeats, the HTTP API and the gate."""

    def __init__(self, plan: Dict[str, Any], plan_path: str, role: str, index: int, run_dir: str,
                 log_path: Optional[str] = None, environ: Optional[Dict[str, str]] = None,
                 own_process: bool = False) -> None:
        self.environ = dict(os.environ if environ is None else environ)
        self.plan, self.role, self.index = plan, role, index
        self.plan_path = os.path.abspath(plan_path)
        self.runtime = runtime_settings(plan)
        self.run_dir = os.path.abspath(run_dir)
        self.log_path, self.own_process = log_path, own_process
        self.worker = find_worker(plan, role, index)
        self.hosts = node_hosts(plan, self.environ)
        # AREAL_AGENT_HOST: this agent's own address when it is not its node's (the Kubernetes driver's own pod)
        self.host = self.environ.get("AREAL_AGENT_HOST") or node_host(self.hosts, int(self.worker.get("node", 0)))
        self.port = int(self.worker["agent_port"])
        self.url = http_url(self.host, self.port)
        ports = [int(p) for p in self.worker.get("ports") or []]
        self.worker_argv = worker_argv(plan, role, index, ports)
        if plan["roles"][role]["kind"] == "driver" and plan["roles"][role].get("upstream") == "areal":
            self.worker_argv = run_trainer_argv(self.worker_argv, own_bundle())
        self.worker_env = worker_env(plan, self.worker, self.hosts)
        self.lists = address_lists(self.worker_env, self.hosts)  # every process's, set by _child_env
        self.worker_ready_port = readiness(plan, role, ports)
        self.secrets = read_secrets(secret_files(plan, self.environ))  # forks inherit them too
        visibility = (plan.get("accelerator") or {}).get("visibility_env")
        if visibility and self.worker.get("devices") and self.environ.get("AREAL_ALLOCATED_DEVICES"):
            self.worker_env[visibility] = allocated_devices(  # the scheduler's devices, sliced by plan
                plan, self.worker, self.environ["AREAL_ALLOCATED_DEVICES"])
        for entry in self.worker.get("forks") or []:  # every forked role must exist: exit 2 before any start
            if entry.get("role") not in plan["roles"]:
                raise PlanError("fork %s/%s names a role the plan does not have" % (entry.get("role"),
                                                                                   entry.get("index")))
        self.table = ChildTable(self.host)
        self.main: Optional[Child] = None
        self.gate, self._gate_log, self.gate_url = None, None, self._find_gate_url()
        self._spawns: "queue.Queue[tuple]" = queue.Queue()
        self._spawner: Optional[threading.Thread] = None
        self._spawned: Dict[int, Any] = {}  # every child ever started (touched by the spawner thread only)
        self._stop_signal: Optional[int] = None
        self._closing = False
        self._stopped = threading.Event()

    # -- set-up --
    def _find_gate_url(self) -> Optional[str]:
        gate = self.plan.get("gate")
        if not gate:
            return None
        owner = find_worker(self.plan, gate["role"], int(gate["index"]))
        return http_url(node_host(self.hosts, int(owner.get("node", 0))), int(owner["agent_port"]))

    def _open_gate(self) -> None:
        gate = self.plan.get("gate")
        if gate and gate["role"] == self.role and int(gate["index"]) == self.index:
            self._gate_log = EventLog(os.path.join(self.run_dir, "gate-events.jsonl"))
            try:
                self.gate = StalenessGate.from_plan(gate, self._gate_log)
            except (ValueError, KeyError, TypeError) as exc:
                raise PlanError("the plan's gate is unusable: %s" % exc) from None

    def _listen(self, token: str) -> AgentServer:
        bind = self.environ.get("AREAL_AGENT_BIND") or self.host
        try:
            return AgentServer((bind, self.port), self, token)
        except OSError as exc:
            raise PlanError("cannot listen on %s:%d: %s" % (bind, self.port, exc)) from None

    def _install_signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return restore

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stop_signal = signum  # only a flag: the main loop does the work (no locks in a handler)

    def log(self, message: str) -> None:
        sys.stderr.write("areal-agent %s/%d: %s\n" % (self.role, self.index, message))
        sys.stderr.flush()

    # -- lifecycle --
    def run(self, token: str) -> int:
        """Serve, start the forks and the worker, wait, stop everything; returns the worker's exit code."""
        for sub in ("state", "logs"):
            os.makedirs(os.path.join(self.run_dir, sub), exist_ok=True)
        server = self._listen(token)
        try:
            self._open_gate()
        except BaseException:
            server.server_close()
            raise
        restore = self._install_signals()
        self._spawner = threading.current_thread()  # children die with the thread that spawned them
        if self.own_process:
            become_subreaper()
        beats = threading.Thread(target=self._beat_loop, name="agent-heartbeat", daemon=True)
        code: Optional[int] = None
        serving = False
        try:
            beats.start()
            self._start_forks()
            code = self._start_worker()
            if code is None:  # the socket listens since _listen(): early callers wait in its backlog
                server.start()
                serving = True
                self._watch()
        finally:
            main_code = self._shutdown()
            self._stopped.set()
            if serving:
                server.shutdown()
            server.server_close()
            beats.join()
            if self._gate_log is not None:
                self._gate_log.close()
            restore()
        return code if code is not None else int(main_code or 0)

    def _start_worker(self) -> Optional[int]:
        state = StateFile(state_path(self.run_dir, self.role, self.index), self.role, self.index, "worker",
                          self.runtime)
        beat_file = self._heartbeat_file(self.role, self.index)
        self.main = Child(self.role, self.index, "worker", state, [], beat_file, self.worker_ready_port)
        env = self._child_env([self.secrets, self.worker_env], beat_file)
        try:
            self.main.proc = spawn(self.worker_argv, env, self.log_path)
            self._spawned[self.main.proc.pid] = self.main.proc
        except OSError as exc:
            self.log("cannot start %s: %s" % (self.worker_argv[0], exc))
            state.finish(FAILED, spawn_error_code(exc))
            return spawn_error_code(exc)
        state.started(self.main.proc.pid, ready=self.main.ready_port is None)  # readiness none: running is ready
        return None

    def _start_forks(self) -> None:
        for entry in self.worker.get("forks") or []:
            role, index = entry["role"], int(entry["index"])
            ports = [int(p) for p in entry.get("ports") or []]
            if not self.table.reserve((role, index)):
                raise PlanError("fork %s/%d is declared twice" % (role, index))
            try:
                self._spawn_forked(role, index, worker_argv(self.plan, role, index, ports), {}, ports)
            except HttpError as exc:
                self.table.release((role, index), None)
                raise PlanError("start-up fork %s/%d: %s" % (role, index, exc.message)) from None

    def _watch(self) -> None:
        """The main loop: run spawn requests, notice exits, reap orphans, until the worker ends or a signal."""
        assert self.main is not None
        while True:
            self._serve_spawns(0.1)
            if self._stop_signal is not None:
                self.log("signal %d: stopping the worker and its forked children" % self._stop_signal)
                return
            if self.main.check_exit() is not None:
                return
            for child in self.table.children():
                child.check_exit()
            self._probe_readiness()
            if self.own_process:
                reap_orphans(self._known())

    def _probe_readiness(self) -> None:
        """Mark each running process ready once its readiness probe passes (at most every 0.5 s per process)."""
        now = time.monotonic()
        for child in [self.main] + self.table.children():
            if child is None or child.state.ready or not child.alive() or now - child.probed_at < 0.5:
                continue
            child.probed_at = now
            if child.ready_port is None or health_ok(self.host, child.ready_port):
                child.state.mark_ready()

    def _shutdown(self) -> Optional[int]:
        """Stop every forked child, then the worker (if still there), kill strays, fail pending spawns.

        Returns the worker's exit code (None when it never started)."""
        self._closing = True
        self._serve_spawns(0)
        children = self.table.pop_all()
        grace = float(self.runtime["grace_period"])
        forked = [c.proc for c in children if c.proc is not None]
        codes = dict(zip([p.pid for p in forked], stop_groups(forked, grace)))  # forked children first
        for child in children:
            if child.proc is not None:
                child.state.finish(STOPPED, codes[child.proc.pid])
        if self.main is not None and self.main.proc is not None and self.main.proc.poll() is None:
            codes[self.main.proc.pid] = stop_groups([self.main.proc], grace)[0]  # then their parent
        if self.own_process:
            kill_stray_children(self._known())
            reap_orphans(self._known())
        if self.main is None or self.main.proc is None:
            return None
        main_code = codes.get(self.main.proc.pid, exit_code(self.main.proc.wait()))
        self.main.state.finish(STOPPED, main_code)  # no-op when the worker had already ended by itself
        return main_code

    def _known(self) -> Dict[int, Any]:
        """Our own unreaped children (also those a request thread is killing right now): not orphans."""
        for pid in [pid for pid, proc in self._spawned.items() if proc.returncode is not None]:
            del self._spawned[pid]
        return dict(self._spawned)

    def _beat_loop(self) -> None:
        interval = float(self.runtime["heartbeat_interval"])
        while not self._stopped.wait(interval):
            for child in [self.main] + self.table.children():
                if child is None:
                    continue
                try:
                    child.state.beat(child.worker_beat())
                except OSError as exc:
                    self.log("cannot write %s: %s" % (child.state.path, exc))

    # -- spawning on the long-lived thread --
    def _serve_spawns(self, timeout: float) -> None:
        try:
            job, future = self._spawns.get(timeout=timeout) if timeout else self._spawns.get_nowait()
        except queue.Empty:
            return
        while True:
            if self._closing:
                future.set_exception(HttpError(503, "the agent is stopping"))
            else:
                try:
                    future.set_result(job())
                except BaseException as exc:  # handed to the waiting request thread
                    future.set_exception(exc)
            try:
                job, future = self._spawns.get_nowait()
            except queue.Empty:
                return

    def _on_spawner(self, job: Callable[[], Any]) -> Any:
        if threading.current_thread() is self._spawner:
            return job()
        future: Future = Future()
        self._spawns.put((job, future))
        return future.result(timeout=60)

    def _heartbeat_file(self, role: str, index: int) -> Optional[str]:
        if not self.runtime.get("worker_heartbeat"):
            return None
        os.makedirs(os.path.join(self.run_dir, "heartbeats"), exist_ok=True)
        return os.path.join(self.run_dir, "heartbeats", "%s.%d" % (role, index))

    def _child_env(self, layers: List[Dict[str, str]], beat_file: Optional[str]) -> Dict[str, str]:
        env = dict(self.environ)
        for layer in layers:
            env.update(layer)
        env["AREAL_AGENT_URL"] = self.url
        env["AREAL_PLAN_FILE"] = self.plan_path  # with the hosts: what upstream's planned scheduler reads
        place_lists(env, self.lists, os.path.join(self.run_dir, "lists"))  # a long list in a file
        if self.gate_url:
            env["AREAL_GATE_URL"] = self.gate_url
        if beat_file:
            env["AREAL_HEARTBEAT_FILE"] = beat_file
        return env

    def _spawn_forked(self, role: str, index: int, argv: List[str], env: Dict[str, str], ports: List[int]) -> Child:
        """On the spawner thread: start one forked child and register it (its key is reserved by the caller)."""
        state = StateFile(state_path(self.run_dir, role, index), role, index, "forked", self.runtime)
        beat_file = self._heartbeat_file(role, index)
        ready_port = readiness(self.plan, role, ports) if role in self.plan["roles"] else None
        child = Child(role, index, "forked", state, list(ports), beat_file, ready_port)
        log_path = os.path.join(self.run_dir, "logs", role, "%d.log" % index)
        if role in self.plan["roles"]:
            own, unset = fork_env(self.plan, self.worker, role, index, self.worker_env, self.hosts)
            env = dict(own, **env)
        else:  # a role the plan does not know (fork_commands: any): only the worker's environment
            unset = frozenset()
        inherited = {k: v for k, v in self.worker_env.items() if k not in unset}
        try:
            child.proc = spawn(argv, self._child_env([self.secrets, inherited, env], beat_file), log_path)
        except OSError as exc:
            state.finish(FAILED, spawn_error_code(exc))
            raise HttpError(400, "cannot start %s: %s" % (argv[0], exc)) from None
        self._spawned[child.proc.pid] = child.proc
        state.started(child.proc.pid, ready=ready_port is None)
        self.table.release((role, index), child)
        return child

    # -- the HTTP API (called from request threads) --
    def fork(self, role: str, index: int, argv: List[str], env: Dict[str, str], ports: List[int]) -> int:
        if self._closing:
            raise HttpError(503, "the agent is stopping")
        if not ROLE_NAME.match(role):
            raise HttpError(400, "field 'role' must be a role name (lower-case letters, digits and '-')")
        allocated = self.table.allocated_ports()
        in_use = {p for c in self.table.children() for p in c.ports}
        if any(port not in allocated or port in in_use for port in ports) or len(set(ports)) != len(ports):
            raise HttpError(400, "field 'ports' may only name ports from /alloc_ports that no child uses")
        if any(w.get("role") == role and w.get("index") == index for w in self.plan["workers"]):
            raise HttpError(409, "%s/%d is a planned worker, not a fork" % (role, index))
        if self.runtime["fork_commands"] == "declared" and \
                not is_declared(self.plan, role, index, argv, env, allocated):
            raise HttpError(403, "raw_cmd/env is not a command the plan declares for role %r "
                                 "(runtime.fork_commands is 'declared')" % role)
        if not self.table.reserve((role, index)):
            raise HttpError(409, "forked worker %s/%d already runs" % (role, index))
        try:
            child = self._on_spawner(lambda: self._spawn_forked(role, index, argv, env, ports))
        except BaseException:
            self.table.release((role, index), None)
            raise
        return child.proc.pid

    def kill_forked(self, role: str, index: int) -> bool:
        child = self.table.pop((role, index))  # out of the table under the lock; the kill waits outside it
        if child is None:
            return False
        if child.proc is not None:
            child.state.finish(STOPPED, stop_groups([child.proc], float(self.runtime["grace_period"]))[0])
        return True

    def alloc_ports(self, count: int) -> List[int]:
        return self.table.alloc_ports(count)

    def forked(self) -> List[Dict[str, Any]]:
        return [child.describe(self.host) for child in self.table.children()]

    def wait_forked(self, role: str, index: int, seconds: float) -> Optional[Dict[str, Any]]:
        return self.table.wait_up((role, index), self.host, seconds)

    def forked_alive(self) -> int:
        return sum(1 for child in self.table.children() if child.alive())

    def record_beat(self, role: Optional[str], index: Optional[int]) -> bool:
        if role is None or (role, index) == (self.role, self.index):
            child = self.main
        else:
            child = self.table.get((role, index))
        if child is None:
            return False
        child.posted_beat = time.time()
        return True


def supervise(plan_path: str, worker: str, run_dir: str, log_path: Optional[str] = None,
              environ: Optional[Dict[str, str]] = None, own_process: bool = False) -> int:
    """Run one planned worker under the agent until it ends; returns its exit code (2: unusable set-up, which is
    recorded as the worker's failed state with its cause, so `areal status` and `start` can say why)."""
    role: Optional[str] = None
    index = 0
    try:
        plan = load_plan(plan_path, environ)
        role, index = parse_worker_spec(worker, os.environ if environ is None else environ)
        try:
            token = token_from_env(environ)
        except OSError as exc:
            raise PlanError("cannot read AREAL_AGENT_TOKEN_FILE: %s" % exc) from None
        if not token:
            raise PlanError("no agent token: set AREAL_AGENT_TOKEN_FILE or AREAL_AGENT_TOKEN "
                            "(the agent never serves its API unauthenticated)")
        return Supervisor(plan, plan_path, role, index, run_dir, log_path, environ, own_process).run(token)
    except PlanError as exc:
        sys.stderr.write("areal-agent: error: %s\n" % exc)
        if role is not None and ROLE_NAME.match(role):
            _setup_failed(state_path(os.path.abspath(run_dir), role, index), role, index, str(exc))
        return 2


def _setup_failed(path: str, role: str, index: int, error: str) -> None:
    """The worker's state when its agent could not start it: failed with exit code 2 and the cause (a state
    already written, e.g. by a worker that ran, is kept)."""
    if os.path.exists(path):
        return
    try:
        StateFile(path, role, index, "worker", DEFAULT_RUNTIME).finish(FAILED, 2, error=error)
    except OSError as exc:
        sys.stderr.write("areal-agent: cannot record the failure in %s: %s\n" % (path, exc))
