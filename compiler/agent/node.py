"""`agent.pyz node`: start one `supervise` agent per planned worker of one logical node and exit with the outcome.

Called by cli.py; it is the container command of a Kubernetes pod (one pod = one logical node). Every agent's
output goes to this process's stdout, each line prefixed `ROLE/INDEX | ` (so `kubectl logs` shows every worker).
The first worker that fails (its role not in completion.may_fail) stops the node's other agents (SIGTERM; each stops
its worker within the grace period) and its exit code is the node's; SIGTERM to this process stops them all."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional

from .plan import PlanError, load_plan, runtime_settings
from .procs import exit_code


def node_workers(plan: Dict[str, Any], node: int) -> List[Dict[str, Any]]:
    """The planned workers (not the driver, not forked children) whose agents run on logical node `node`."""
    roles = plan.get("roles") or {}
    return [w for w in plan["workers"] if int(w.get("node", 0)) == node
            and (roles.get(w.get("role")) or {}).get("kind") != "driver"]


def choose_node(nodes: str, index_env: str, environ: Dict[str, str]) -> int:
    """nodes[i] where i is the pod's index from environment variable `index_env` (e.g. JOB_COMPLETION_INDEX)."""
    try:
        listed = [int(item) for item in nodes.split(",")]
    except ValueError:
        raise PlanError("--nodes must be a comma list of logical node numbers, got %r" % nodes) from None
    raw = environ.get(index_env, "")
    if not raw.isdigit() or int(raw) >= len(listed):
        raise PlanError("environment variable %s must hold a pod index below %d, got %r"
                        % (index_env, len(listed), raw))
    return listed[int(raw)]


def _agent_command() -> List[str]:
    """How to start another agent: the same zipapp (agent.pyz), or the package when run with -m in development."""
    if sys.argv and sys.argv[0].endswith(".pyz"):
        return [sys.executable, "-I", sys.argv[0]]
    return [sys.executable, "-m", __package__]


def _name(worker: Dict[str, Any]) -> str:
    return "%s/%d" % (worker["role"], int(worker["index"]))


def _pump(name: str, stream: Any, lock: threading.Lock) -> None:
    prefix = ("%s | " % name).encode("utf-8")
    for line in iter(stream.readline, b""):
        with lock:
            sys.stdout.buffer.write(prefix + line if line.endswith(b"\n") else prefix + line + b"\n")
            sys.stdout.buffer.flush()


class Node:
    """The agents of one logical node, started together and stopped together."""

    def __init__(self, plan_path: str, node: int, run_dir: str) -> None:
        self.plan = load_plan(plan_path)
        self.workers = node_workers(self.plan, node)
        if not self.workers:
            raise PlanError("the plan has no worker on logical node %d" % node)
        self.may_fail = set((self.plan.get("completion") or {}).get("may_fail") or [])
        self.grace = float(runtime_settings(self.plan)["grace_period"])
        self.argv = [_agent_command() + ["supervise", "--plan", plan_path, "--worker", _name(w), "--run-dir", run_dir]
                     for w in self.workers]
        self.procs: List[subprocess.Popen] = []
        self.signalled: Optional[int] = None

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda signum, frame: setattr(self, "signalled", signum))
        lock, pumps = threading.Lock(), []
        for worker, argv in zip(self.workers, self.argv):
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            self.procs.append(proc)
            pump = threading.Thread(target=_pump, args=(_name(worker), proc.stdout, lock), daemon=True)
            pump.start()
            pumps.append(pump)
        code = self._wait()
        for pump in pumps:
            pump.join(timeout=5)
        return code

    def _wait(self) -> int:
        """0 when every agent ended well; else the first failing one's code (or 128+signal when stopped)."""
        failed: Optional[int] = None
        while any(p.poll() is None for p in self.procs):
            if self.signalled is not None:
                self._stop()
                return 128 + self.signalled
            for worker, proc in zip(self.workers, self.procs):
                code = proc.poll()
                if code is None or failed is not None or exit_code(code) == 0 or worker["role"] in self.may_fail:
                    continue
                failed = exit_code(code)
                sys.stderr.write("areal-agent node: %s failed with exit code %d: stopping this node\n"
                                 % (_name(worker), failed))
                self._stop()
            time.sleep(0.2)
        return failed if failed is not None else 0

    def _stop(self) -> None:
        """SIGTERM every agent still running (each stops its worker and forks in order), SIGKILL after the grace."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace + 5
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
