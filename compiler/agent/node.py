"""`agent.pyz node`: start one `supervise` agent per planned worker of one logical node and exit with the outcome.

Called by cli.py; it is the container command of a Kubernetes pod (one pod = one logical node). Every agent's
output goes to this process's stdout, each line prefixed `ROLE/INDEX | ` (so `kubectl logs` shows every worker).
outcome.py decides, as for every target: the first worker that fails (its role not in completion.may_fail) stops the
node's other agents (SIGTERM; each stops its worker within the grace period) and its exit code is the node's;
SIGTERM to this process stops them all (a JobSet deletes the other pods once the driver ends)."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from .outcome import Decision, Ended, decide, exit_code_of, stop_stages
from .plan import PlanError, load_plan, runtime_settings
from .procs import exit_code
from .state import iso


def node_workers(plan: Dict[str, Any], node: int) -> List[Dict[str, Any]]:
    """The planned workers (not the driver, not forked children) whose agents run on logical node `node`."""
    roles = plan.get("roles") or {}
    return [w for w in plan["workers"] if int(w.get("node", 0)) == node
            and (roles.get(w.get("role")) or {}).get("kind") != "driver"]


def choose_node(nodes: str, index_env: str, environ: Dict[str, str]) -> int:
    """nodes[i] where i is the pod's index from environment variable `index_env` (e.g. JOB_COMPLETION_INDEX);
    NODES is a comma list of logical nodes, each a number or a run FIRST-LAST."""
    try:
        listed = [n for item in nodes.split(",") for n in _run(item)]
    except ValueError:
        raise PlanError("--nodes must be a comma list of logical node numbers or runs FIRST-LAST, got %r"
                        % nodes[:200]) from None
    raw = environ.get(index_env, "")
    if not raw.isdigit() or int(raw) >= len(listed):
        raise PlanError("environment variable %s must hold a pod index below %d, got %r"
                        % (index_env, len(listed), raw))
    return listed[int(raw)]


def _run(item: str) -> range:
    """'7' -> 7; '2-5' -> 2, 3, 4, 5 (the Kubernetes target writes a long list's runs so)."""
    first, dash, last = item.partition("-")
    if not (first.isdigit() and (not dash or last.isdigit())) or (dash and int(last) < int(first)):
        raise ValueError(item)
    return range(int(first), int(last if dash else first) + 1)


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
    """The agents of one logical node, started together and stopped together (stop order from outcome.py)."""

    def __init__(self, plan_path: str, node: int, run_dir: str) -> None:
        self.plan = load_plan(plan_path)
        self.workers = node_workers(self.plan, node)
        if not self.workers:
            raise PlanError("the plan has no worker on logical node %d" % node)
        self.grace = float(runtime_settings(self.plan)["grace_period"])
        self.argv = [_agent_command() + ["supervise", "--plan", plan_path, "--worker", _name(w), "--run-dir", run_dir]
                     for w in self.workers]
        self.procs: Dict[str, subprocess.Popen] = {}
        self.ended: Dict[str, Ended] = {}
        self.signalled: Optional[int] = None

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda signum, frame: setattr(self, "signalled", signum))
        lock, pumps = threading.Lock(), []
        for worker, argv in zip(self.workers, self.argv):
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            self.procs[_name(worker)] = proc
            pumps.append(threading.Thread(target=_pump, args=(_name(worker), proc.stdout, lock), daemon=True))
            pumps[-1].start()
        outcome, code = self._wait()
        for pump in pumps:
            pump.join(timeout=5)
        sys.stderr.write("areal-agent node: %s, exit code %d\n" % (outcome, code))
        return code

    def _wait(self) -> Tuple[str, int]:
        """Until every agent ended, or outcome.decide says stop (then stop the rest in order)."""
        decision = Decision(False, None, "")
        while True:
            for name, proc in self.procs.items():
                if name not in self.ended and proc.poll() is not None:
                    self.ended[name] = Ended(name, exit_code(proc.returncode), iso(time.time()))
            running = len(self.procs) - len(self.ended)
            decision = decide(self.plan, list(self.ended.values()), running, fail_fast=True)
            if decision.stop or self.signalled is not None:
                sys.stderr.write("areal-agent node: %s: stopping this node\n"
                                 % (decision.reason if decision.stop else "signal %d" % self.signalled))
                self._stop()
                return exit_code_of(decision, self.signalled)
            if running == 0:
                return exit_code_of(decision, None)
            time.sleep(0.2)

    def _stop(self) -> None:
        """SIGTERM stage by stage (outcome.stop_stages: the gate's worker last); SIGKILL after the grace."""
        for stage in stop_stages(self.plan):
            procs = [self.procs[name] for name in stage if name in self.procs and self.procs[name].poll() is None]
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + self.grace + 5
            for proc in procs:
                try:
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
