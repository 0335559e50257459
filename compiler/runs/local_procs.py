"""The processes of a run on this machine: which are still ours and alive (a pid is checked against its start time
or command line, since pids get reused), and stopping them: SIGTERM, a wait, SIGKILL only when asked.

Used by runs/local.py's Backend (`areal stop`, `ps`, `status`, a `start` that gives up), also for a run whose record
cannot be read, where the agents' own state files in its run directory say what runs."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

AGENT = b"agent.pyz"  # in every agent's command line
POLL = 0.2


def _stat(pid) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None when there is no such process."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def pid_alive(pid) -> bool:
    fields = _stat(pid)
    return bool(fields) and fields[0] not in ("Z", "X")


def started(pid) -> int | None:
    """When the process started (clock ticks since boot): with the pid, who it is."""
    fields = _stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 and fields[19].isdigit() else None


def parent(pid) -> int | None:
    fields = _stat(pid)
    return int(fields[1]) if fields and len(fields) > 1 and fields[1].isdigit() else None


def runs(pid, marker: bytes) -> bool:
    """The pid is alive AND is still our process (its command line names `marker`)."""
    if not pid_alive(pid):
        return False
    try:
        return marker in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def runner(job: dict) -> int | None:
    """The run's runner (the `areal run` command or the detached runner of `areal start`), if it still runs: the
    recorded pid with the recorded start time."""
    pid, start = job.get("runner_pid"), job.get("runner_start")
    if start is None:  # a record written before start times were: its command line must name areal
        return pid if runs(pid, b"areal_compiler") else None
    return pid if pid_alive(pid) and started(pid) == start else None


def agents(job: dict) -> list[int]:
    recorded = job.get("agents")
    return [pid for pid in (recorded.values() if isinstance(recorded, dict) else []) if runs(pid, AGENT)]


def _argument(agent: int, flag: bytes) -> Path | None:
    """The value an agent was given for FLAG (`--plan`, `--run-dir`) on its command line."""
    try:
        argv = Path(f"/proc/{agent}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    at = argv.index(flag) + 1 if flag in argv else len(argv)
    return Path(os.fsdecode(argv[at])) if at < len(argv) else None


def plan_of(agent: int) -> Path | None:
    """The plan.json an agent runs (its `--plan` argument)."""
    return _argument(agent, b"--plan")


def found_in(rows: list[dict], run_dir: Path) -> tuple[int | None, list[int]]:
    """The runner and the agents that RUN_DIR's state files show alive on this machine (for a run whose record
    cannot be read): each live agent's pid, and their parent when it is a runner of areal. A pid counts only when
    that process is an agent of RUN_DIR itself (its `--run-dir`), so a state file cannot point a stop elsewhere."""
    pids = sorted({r["pid"]["agent"] for r in rows if isinstance(r.get("pid"), dict)
                   and r.get("status") in ("healthy", "starting", "hung") and runs(r["pid"].get("agent"), AGENT)
                   and _argument(r["pid"]["agent"], b"--run-dir") == run_dir})
    parents = {parent(pid) for pid in pids}
    boss = next((p for p in parents if runs(p, b"areal")), None)
    return boss, pids


def terminate(boss: int | None, pids: list[int], grace: float, force: bool) -> list[int]:
    """SIGTERM the runner, which stops its agents in order (or, without one, every agent); wait as long as the
    runner's own stop may take; with `force` SIGKILL what is left (each agent leads its own process group).
    Returns the pids still alive."""
    def alive() -> list[int]:
        return [p for p in ([boss] if boss else []) + pids if pid_alive(p)]

    for pid in [boss] if boss else pids:
        _kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 3 * (grace + 2) + 5
    while time.monotonic() < deadline and alive():
        time.sleep(POLL)
    if alive() and force:
        for pid in pids:
            _kill(pid, signal.SIGKILL, group=True)
        if boss:
            _kill(boss, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and alive():
            time.sleep(POLL)
    return alive()


def _kill(pid: int, sig: int, group: bool = False) -> None:
    try:
        (os.killpg if group else os.kill)(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
