"""What every run backend offers the operator verbs: submit, state, workers, logs, stop; one error type.

Implemented by runs/local.py, runs/slurm.py (and each new target's runs/<name>.py); used by cli_runs.py only
through the target registry, so the CLI never names a target."""
from __future__ import annotations

import enum
import time
from pathlib import Path
from typing import Iterator


class RunState(str, enum.Enum):
    """A run's state as every target reports it (the record's `outcome` once terminal)."""

    PENDING = "pending"  # accepted by the scheduler, waiting for resources
    STARTING = "starting"  # resources granted or processes launched, not every worker ready yet
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"  # stopped on request (areal stop, Ctrl-C, scancel)
    CRASHED = "crashed"  # the thing that runs the job died without an outcome
    UNKNOWN = "unknown"  # the cluster could not be asked

    @property
    def terminal(self) -> bool:
        return self in (RunState.SUCCEEDED, RunState.FAILED, RunState.STOPPED, RunState.CRASHED)

    @property
    def active(self) -> bool:
        """Holds its name: a new run of the same name is refused (unknown counts: never guess "ended")."""
        return not self.terminal


class OperatorError(Exception):
    """Any failure of an operator verb, printed as the envelope's error {code, kind, message, retryable}."""

    KINDS = ("invalid", "not_found", "conflict", "unavailable", "denied", "run")

    def __init__(self, code: str, message: str, kind: str = "invalid", retryable: bool = False):
        super().__init__(message)
        self.code, self.message, self.kind, self.retryable = code, message, kind, retryable


class RunBackend:
    """Operates the runs of one target. Subclasses set `target` and implement submit, state and stop; the
    defaults read the agents' state files and log files under the record's run_dir (shared by local and Slurm)."""

    target = ""
    follow_poll = 2.0  # seconds between looks at a remote scheduler while following logs
    scheduler_logs: tuple[str, ...] = ()  # the scheduler's own logs `areal logs RUN NAME` also shows (`batch/out`)

    def submit(self, folder: Path, record, dry_run: bool = False, address: str | None = None) -> dict:
        """Start or submit the compiled target folder and fill `record.job` and `record.run_dir`; with
        dry_run, ask the cluster whether it would accept the job without starting anything. `address`: the
        cluster's API address when the user gave one."""
        raise NotImplementedError

    def run(self, record, stream_logs: bool) -> int:
        """Run in the foreground and return the job's exit code (targets that run on this machine)."""
        raise OperatorError("not_supported", f"the {self.target} target cannot run in the foreground here")

    def wait_ready(self, record, timeout: float) -> list[dict]:
        """After submit: wait until every worker is ready; OperatorError names what failed."""
        raise OperatorError("not_supported", f"the {self.target} target cannot be waited for here")

    def state(self, record) -> RunState:
        raise NotImplementedError

    def stop(self, record, force: bool) -> str:
        """Ask the run to stop; returns what was done, in words (`stopped`, `already ended (succeeded, exit code
        0)`, ...); words starting with `still` mean it has not stopped yet (the command exits 1)."""
        raise NotImplementedError

    def stop_unrecorded(self, name: str, force: bool) -> str | None:
        """Stop what this target can find of run NAME when its record cannot be read (what was done, in words);
        None when it finds nothing (a cluster job cannot be found without its record)."""
        return None

    def details(self, record) -> dict:
        """Target-specific facts for `areal status` (e.g. the Slurm job's components); {} by default."""
        return {}

    def workers(self, record) -> list[dict]:
        """Every worker's and forked child's derived state (healthy, starting, failed, ...), the driver first."""
        from areal_compiler.agent.state import read_run

        if not record.run_dir:
            return []
        try:
            rows = read_run(record.run_dir)
        except OSError:
            return []
        return sorted(rows, key=lambda r: r.get("role") != "driver")

    def log_files(self, record) -> dict[str, Path]:
        """worker name (role/index) -> its log file, plus any scheduler logs the target keeps."""
        folder = Path(record.run_dir) / "logs" if record.run_dir else None
        if folder is None or not folder.is_dir():
            return {}
        return {f"{p.parent.name}/{p.stem}": p for p in sorted(folder.glob("*/*.log"))}

    def log_names(self, record) -> list[str]:
        """Every name `areal logs RUN NAME` shows: the planned workers and forked children (by the plan, so before
        any log exists), the logs found (forks the plan does not name), the scheduler's own logs."""
        found = [n for n in self.log_files(record) if "/" in n]
        return list(dict.fromkeys(process_names(_plan(record.target_dir)) + found + list(self.scheduler_logs)))

    def logs(self, record, worker: str | None, tail: int | None, follow: bool, load) -> Iterator[tuple[str, str]]:
        """(worker, line) pairs; with follow, new lines until the run is terminal (`load()` rereads the record)."""
        from areal_compiler.runs.view import LogTail

        tailer = LogTail(lambda: self.log_files(record), only=worker, tail=tail)
        yield from tailer.lines()
        while follow:
            record = load()
            state = self.state(record)
            yield from tailer.lines()
            if state.terminal:
                return
            time.sleep(self.follow_poll if state in (RunState.PENDING, RunState.UNKNOWN) else 0.2)


def process_names(plan: dict) -> list[str]:
    """role/index of every planned process of a plan (plan.json): each worker, then the children forked beside it."""
    workers = plan.get("workers") if isinstance(plan, dict) else None
    return [f"{p.get('role')}/{p.get('index')}" for w in (workers if isinstance(workers, list) else [])
            if isinstance(w, dict) for p in [w, *(w.get("forks") or [])] if isinstance(p, dict)]


def _plan(target_dir: str) -> dict:
    import json

    try:
        return json.loads((Path(target_dir) / "plan.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def ended_words(record, state: RunState) -> str:
    """What `areal stop` says of a run with nothing left to stop: how it ended, or that nothing of it runs."""
    if not state.terminal:
        return f"nothing of it runs (state {state.value})"
    return f"already ended ({state.value}" + ("" if record.exit_code is None else f", exit code {record.exit_code}") \
        + ")"


def backend_for(target: str) -> RunBackend:
    """The run backend of a registered target (its module's BACKEND names the module; it defines Backend)."""
    import importlib

    from areal_compiler import targets

    return importlib.import_module(targets.get(target).BACKEND).Backend()
