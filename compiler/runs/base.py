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
        """Ask the run to stop; returns what was done, in words (`already stopped`, `stopped`, ...)."""
        raise NotImplementedError

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


def backend_for(target: str) -> RunBackend:
    """The run backend of a registered target (its module's BACKEND names the module; it defines Backend)."""
    import importlib

    from areal_compiler import targets

    return importlib.import_module(targets.get(target).BACKEND).Backend()
