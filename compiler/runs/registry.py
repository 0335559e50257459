"""The run registry: one JSON record per run under $AREAL_HOME/runs/<experiment>/<trial>.json.

Written by `areal run/start/submit`, read by `ps`, `status`, `logs`, `stop`; shared by every target."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from areal_compiler.agent.state import atomic_write_json  # one atomic writer (temp, fsync, rename) for both
from areal_compiler.report import now_iso


class RegistryError(Exception):
    KINDS = {"run_not_found": "not_found", "run_active": "conflict", "run_starting": "conflict"}

    def __init__(self, code: str, message: str, retryable: bool = False):
        super().__init__(message)
        self.code, self.message, self.retryable = code, message, retryable
        self.kind = self.KINDS.get(code, "invalid")


def areal_home() -> Path:
    return Path(os.environ.get("AREAL_HOME") or Path.home() / ".areal")


@dataclass
class RunRecord:
    name: str  # experiment/trial
    target: str  # local | slurm | ...
    target_dir: str  # the compiled target folder the run was started from (absolute)
    run_dir: str  # where the agents write state and logs (absolute)
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    job: dict = field(default_factory=dict)  # target ids: {"pids": [...]} or {"slurm_job_id": "123"}
    outcome: str | None = None  # set once the run has ended: completed | failed | stopped | crashed
    exit_code: int | None = None


def record_path(name: str) -> Path:
    experiment, _, trial = name.partition("/")
    if not experiment or not trial or "/" in trial or experiment in (".", "..") or trial in (".", ".."):
        raise RegistryError("bad_run_name", f"run names are <experiment>/<trial>, got {name!r}")
    return areal_home() / "runs" / experiment / f"{trial}.json"


def save(record: RunRecord) -> None:
    record.updated_at = now_iso()
    path = record_path(record.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(str(path), asdict(record))


def load(name: str) -> RunRecord:
    path = record_path(name)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return RunRecord(**data)
    except FileNotFoundError:
        raise RegistryError("run_not_found", f"no run named {name}; `areal ps -a` lists runs") from None
    except (ValueError, TypeError) as exc:
        raise RegistryError("run_record_corrupt", f"run record {path} is unreadable: {exc}") from None


def all_records() -> list[RunRecord]:
    root = areal_home() / "runs"
    out = []
    for path in sorted(root.glob("*/*.json")):
        try:
            out.append(load(f"{path.parent.name}/{path.stem}"))
        except RegistryError:
            continue
    return out


def claim(record: RunRecord, is_active) -> None:
    """Create the record, refusing when a run of that name is still active (`is_active(old) -> bool`).

    An exclusive lock file makes two simultaneous starts of the same name impossible."""
    path = record_path(record.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_suffix(".lock")
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        raise RegistryError("run_starting", f"run {record.name} is being started by another process "
                                            f"(remove {lock} if that process is gone)", retryable=True) from None
    try:
        os.write(fd, str(os.getpid()).encode())
        if path.exists():
            try:
                old = load(record.name)
            except RegistryError:
                old = None
            if old is not None and is_active(old):
                raise RegistryError("run_active", f"run {record.name} is already running "
                                                  f"(target {old.target}); stop it first: areal stop {record.name}")
        save(record)
    finally:
        os.close(fd)
        lock.unlink(missing_ok=True)


def discard(record: RunRecord) -> None:
    """Remove a record this process claimed but could not start (so it blocks nothing and shows nowhere)."""
    try:
        current = load(record.name)
    except RegistryError:
        return
    if current.created_at == record.created_at and current.target == record.target and not current.job:
        record_path(record.name).unlink(missing_ok=True)
