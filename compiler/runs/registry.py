"""The run registry: one JSON record per run name under $AREAL_HOME/runs/<experiment>/<trial>.json.

Written by `areal run/start/submit`, read by `ps`, `status`, `logs`, `stop`; shared by every target. Every change
happens under an exclusive lock per run name (flock: released when the holder dies), records are replaced
atomically, a corrupt record is reported and refused (never ignored or overwritten), and a failed start or submit
puts the previous record back instead of deleting anything."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator

from areal_compiler.agent.state import atomic_write_json  # one atomic writer (temp, fsync, rename) for both
from areal_compiler.printing import now_iso
from areal_compiler.runs.base import OperatorError
from areal_compiler.runs.paths import BadRunName, areal_home, record_path

MAX_RECORD = 1 << 20  # a record is a few KiB; reading more than this means it is not one


@dataclass
class RunRecord:
    name: str  # experiment/trial
    target: str
    target_dir: str  # the compiled target folder the run was started from (absolute)
    run_dir: str  # where the agents write state and logs (absolute; "" until known)
    workdir: str = ""  # the workers' working directory
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    job: dict = field(default_factory=dict)  # target ids: {"runner_pid": ..} or {"slurm_job_id": "123"}
    outcome: str | None = None  # a terminal RunState value once the run has ended
    exit_code: int | None = None


def _path(name: str):
    try:
        return record_path(name)
    except BadRunName as exc:
        raise OperatorError("bad_run_name", str(exc)) from None


def save(record: RunRecord) -> None:
    record.updated_at = now_iso()
    path = _path(record.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(str(path), asdict(record))


def load(name: str) -> RunRecord:
    path = _path(name)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_RECORD + 1)
    except FileNotFoundError:
        raise OperatorError("run_not_found", f"no run named {name}; `areal ps -a` lists runs", "not_found") from None
    except OSError as exc:
        raise OperatorError("run_record_unreadable", f"cannot read run record {path}: {exc.strerror}") from None
    try:
        if len(raw) > MAX_RECORD:
            raise ValueError("larger than a run record can be")
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict) or data.get("name") != name:
            raise ValueError("it does not describe this run")
        record = RunRecord(**data)
        if not all(isinstance(getattr(record, k), str) for k in ("target", "target_dir", "run_dir")) \
                or not isinstance(record.job, dict):
            raise ValueError("fields of the wrong type")
        return record
    except (ValueError, TypeError) as exc:
        raise OperatorError("run_record_corrupt", f"run record {path} is corrupt ({exc}); it is kept as it is: "
                                                  f"inspect it, then remove it (`areal stop {name}` stops what "
                                                  "its run directory on this machine shows alive)",
                            "conflict") from None


def all_records() -> Iterator[tuple[str, RunRecord | OperatorError]]:
    """(name, record or the error that makes it unreadable) for every record, sorted by name."""
    root = areal_home() / "runs"
    for path in sorted(root.glob("*/*.json")):
        name = f"{path.parent.name}/{path.stem}"
        try:
            yield name, load(name)
        except OperatorError as exc:
            yield name, exc


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """Hold the run name's lock; a second holder is refused at once (retryable) instead of waiting."""
    path = _path(name).with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OperatorError("run_busy", f"run {name} is being changed by another areal command; try again",
                                "conflict", retryable=True) from None
        yield
    finally:
        os.close(fd)


def claim(record: RunRecord, is_active: Callable[[RunRecord], bool]) -> RunRecord | None:
    """Make `record` the run of its name, unless a run of that name is active (or its record is corrupt).

    Call under locked(name). Returns the previous record (None if there was none) for `restore`."""
    previous = None
    if _path(record.name).exists():
        previous = load(record.name)  # a corrupt record raises: it is never overwritten
        if is_active(previous):
            raise OperatorError("run_active", f"run {record.name} is already active (target {previous.target}); "
                                              f"stop it first: areal stop {record.name}", "conflict")
    save(record)
    return previous


def restore(record: RunRecord, previous: RunRecord | None) -> None:
    """Undo a claim whose start or submission failed: the previous record comes back (or none, if there was
    none), so a failed operation never loses an earlier run's record."""
    try:
        current = load(record.name)
    except OperatorError:
        return
    if current.created_at != record.created_at or current.job:
        return  # not ours any more, or it started after all: keep it
    if previous is None:
        _path(record.name).unlink(missing_ok=True)
    else:
        save(previous)
