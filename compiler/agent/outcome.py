"""How a job ends, decided once for every target: the job's exit code, when to stop, and in which order.

Called by the local runner (runs/local.py), the Slurm batch script (through `agent.pyz conclude`) and the Ray and
Kubernetes launchers. Reads only the plan's `completion` and what the agents recorded."""
from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Tuple

DRIVER = "driver/0"


class Ended(NamedTuple):
    """A planned worker (or the driver) that ended on its own, not because the job stopped it."""

    name: str  # role/index
    code: int
    finished_at: str  # ISO-8601 UTC from its agent's state file ("" when unknown: sorts first)
    why: str = ""  # its agent's words when the agent could not start it (a busy port, an unreadable secret)


class Decision(NamedTuple):
    stop: bool  # stop every process still running (in stop_stages order)
    exit_code: Optional[int]  # the job's exit code once it is decided, else None
    reason: str


def decide(plan: Dict[str, Any], ended: List[Ended], running: int, fail_fast: bool = True) -> Decision:
    """The job's fate so far. `ended`: processes that ended on their own; `running`: how many still run.

    With a driver: the driver's exit ends the job with its code; a worker of a role that may not fail which ended
    before the driver (by the agents' recorded times, also when both are noticed at once) ends the job with that
    worker's code. Without one: the first failure (by when it ended)
    decides the code, stopping the rest at once when fail_fast; success when every worker ended with 0."""
    completion = plan.get("completion") or {}
    may_fail = set(completion.get("may_fail") or ())
    failures = sorted((e for e in ended if e.code != 0 and e.name.rpartition("/")[0] not in may_fail),
                      key=lambda e: (e.finished_at, e.name))
    if completion.get("driver"):
        driver = next((e for e in ended if e.name == DRIVER), None)
        failures = [e for e in failures if e.name != DRIVER]
        if failures and (driver is None or failures[0].finished_at <= driver.finished_at):
            first = failures[0]  # it failed before the driver ended (often the reason the driver ends)
            return Decision(True, first.code, _failed(first, "%s failed with code %d while the driver ran"))
        if driver is not None:
            return Decision(True, driver.code, "the driver exited with code %d" % driver.code)
        return Decision(False, None, "the driver runs")
    if failures and (fail_fast or running == 0):
        return Decision(True, failures[0].code, _failed(failures[0], "%s failed first, with code %d"))
    if running == 0:
        return Decision(False, 0, "every worker ended with code 0")
    return Decision(False, None, "%d process(es) run" % running)


def _failed(ended: Ended, words: str) -> str:
    """Why the job ends: the failure in WORDS (name, code), or that its agent could not start it, and why."""
    if ended.why:
        return "%s could not start (%s), exit code %d" % (ended.name, ended.why, ended.code)
    return words % (ended.name, ended.code)


def stop_stages(plan: Dict[str, Any]) -> List[List[str]]:
    """Planned processes in the order they are stopped: the driver, then every other worker (each agent stops its
    forked children before its worker), then the worker whose agent serves the gate, so no rollout loses its
    gate while the others stop."""
    gate = plan.get("gate")
    gate_name = "%s/%s" % (gate["role"], gate["index"]) if gate else None
    names = ["%s/%s" % (w["role"], w["index"]) for w in plan["workers"]]
    stages = [[n for n in names if n == DRIVER], [n for n in names if n not in (DRIVER, gate_name)],
              [n for n in names if n == gate_name]]
    return [stage for stage in stages if stage]


def ended_from_states(states: List[Dict[str, Any]], names: Optional[set] = None) -> List[Ended]:
    """Ended processes from state files (agent/state.py read_run rows or raw states): a worker that finished
    completed or failed on its own; a stopped one was stopped by the job and does not decide anything."""
    out = []
    for state in states:
        name = "%s/%s" % (state.get("role"), state.get("index"))
        status = state.get("state_status", state.get("status"))
        code = state.get("exit_code")
        if state.get("kind") == "forked" or (names is not None and name not in names):
            continue
        if status in ("completed", "failed") and isinstance(code, int):
            out.append(Ended(name, code, str(state.get("finished_at") or ""), str(state.get("error") or "")))
    return out


def exit_code_of(decision: Decision, stop_signal: Optional[int]) -> Tuple[str, int]:
    """(outcome, exit code) at the end: stopped on request (128 + signal), failed, or succeeded."""
    if stop_signal is not None and decision.exit_code is None:
        return "stopped", 128 + stop_signal
    code = decision.exit_code or 0
    return ("succeeded" if code == 0 else "failed"), code
