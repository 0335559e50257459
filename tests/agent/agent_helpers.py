"""Helpers for the agent tests: a hand-built minimal plan.json, starting agents, polling, process checks.

Imported by the tests in tests/agent (independent of the compiler's plan builder)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

TOKEN = "agent-test-token-5b1e"
PY = sys.executable
FAST_RUNTIME = {"heartbeat_interval": 0.2, "hung_after": 1.0, "grace_period": 1.0,
                "worker_heartbeat": False, "fork_commands": "declared"}


def free_ports(count: int) -> List[int]:
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def worker(role: str, index: int, argv: List[str], env: Optional[Dict[str, str]] = None,
           forks: Optional[List[Dict[str, Any]]] = None, ports: int = 0, readiness: str = "none") -> Dict[str, Any]:
    """A worker of the hand-built plan; its role gets `argv` and `env` (the plan states them once per role).
    A fork is {"role", "index", "argv", "env"?, "ports"?: [..] or "port_count"?: n, "readiness"?}."""
    return {"role": role, "index": index, "argv": argv, "env": env or {}, "forks": forks or [], "ports": ports,
            "readiness": readiness}


def _role(argv: List[str], env: Dict[str, str], port_count: int, readiness: str, workers: int) -> Dict[str, Any]:
    return {"kind": "helper", "argv": list(argv), "env": dict(env), "port_count": port_count, "workers": workers,
            "instance_nodes": 1, "readiness": readiness}


def make_plan(path: Path, workers: List[Dict[str, Any]], runtime: Optional[Dict[str, Any]] = None,
              gate: Optional[Dict[str, Any]] = None, secrets: Optional[Dict[str, str]] = None) -> Path:
    """A minimal version-2 plan.json in the shape of docs/plan-contract.md, with free agent and worker ports."""
    plan_workers, roles = [], {}
    for item in workers:
        ports = free_ports(item["ports"]) if item["ports"] else []
        forks = []
        for fork in item["forks"]:
            fork_ports = list(fork["ports"]) if fork.get("ports") else free_ports(int(fork.get("port_count") or 0))
            forks.append({"role": fork["role"], "index": fork["index"], "ports": fork_ports})
            roles[fork["role"]] = _role(fork["argv"], fork.get("env") or {}, len(fork_ports),
                                        fork.get("readiness", "none"), 1)
        plan_workers.append({"role": item["role"], "index": item["index"], "node": 0, "devices": [], "ports": ports,
                             "agent_port": free_ports(1)[0], "forks": forks})
        roles[item["role"]] = _role(item["argv"], item["env"], item["ports"], item["readiness"],
                                    sum(1 for w in workers if w["role"] == item["role"]))
    plan = {
        "plan_version": 3, "experiment_name": "agent-test", "trial_name": "t0", "run_id": "agent-test-t0-0",
        "accelerator": {"name": "CPU", "devices_per_node": 0, "visibility_env": None}, "nodes": 1,
        "runtime": dict(FAST_RUNTIME, **(runtime or {})), "gate": gate,
        "completion": {"driver": False, "may_fail": []}, "roles": roles, "workers": plan_workers,
        "secrets": {k: {"file": v} for k, v in (secrets or {}).items()},
    }
    path.write_text(json.dumps(plan, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def agent_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("AREAL_NODE_HOSTS", "AREAL_AGENT_BIND", "AREAL_AGENT_TOKEN_FILE")}
    env["AREAL_AGENT_TOKEN"] = TOKEN
    env.update(extra)
    return env


def start_agent(plan: Path, spec: str, run_dir: Path, env: Optional[Dict[str, str]] = None,
                log: Optional[Path] = None, launcher: Optional[List[str]] = None) -> subprocess.Popen:
    argv = (launcher or [PY, "-m", "areal_compiler.agent"]) + [
        "supervise", "--plan", str(plan), "--worker", spec, "--run-dir", str(run_dir)]
    if log is not None:
        argv += ["--log", str(log)]
    return subprocess.Popen(argv, env=agent_env() if env is None else env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_until(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % (what or check))
        time.sleep(interval)


def plan_worker(plan: Path, role: str, index: int) -> Dict[str, Any]:
    data = json.loads(plan.read_text(encoding="utf-8"))
    return next(w for w in data["workers"] if w["role"] == role and w["index"] == index)


def agent_url(plan: Path, role: str, index: int) -> str:
    return "http://127.0.0.1:%d" % plan_worker(plan, role, index)["agent_port"]


def read_state(run_dir: Path, role: str, index: int) -> Optional[Dict[str, Any]]:
    path = run_dir / "state" / ("%s.%d.json" % (role, index))
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def child_pid(run_dir: Path, role: str, index: int) -> Optional[int]:
    state = read_state(run_dir, role, index)
    return state["pid"]["child"] if state else None


def alive(pid: int) -> bool:
    """True for a live, non-zombie process."""
    try:
        with open("/proc/%d/stat" % pid, encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def group_members(pgid: int) -> List[int]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/stat" % pid, encoding="utf-8") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                found.append(int(pid))
    return found


def stop_agent(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout:
        proc.stdout.close()
    if proc.stderr:
        proc.stderr.close()
    return proc.returncode


def script(body: str) -> List[str]:
    """argv running a small Python program (never through a shell)."""
    return [PY, "-c", body]
