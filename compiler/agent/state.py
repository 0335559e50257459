"""Run state: one atomically written JSON file per worker/forked child, and the reader that derives health.

Written by supervisor.py (StateFile); read by cli.py `status` and by tests through read_run()/derive()."""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from .files import atomic_write, read_bytes

MAX_STATE = 1 << 20  # bytes of one state file (a few hundred in practice)
RUNNING, COMPLETED, FAILED, STOPPED = "running", "completed", "failed", "stopped"
TERMINAL = (COMPLETED, FAILED, STOPPED)


def iso(epoch: float) -> str:
    """ISO-8601 with offset (UTC)."""
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat()


def atomic_write_json(path: str, data: Dict[str, Any], durable: bool = True) -> None:
    """JSON (sorted keys, two-space indent, explicit UTF-8, a final line break) written atomically (files.py)."""
    text = json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    atomic_write(path, text.encode("utf-8"), durable)


def state_path(run_dir: str, role: str, index: int) -> str:
    return os.path.join(run_dir, "state", "%s.%d.json" % (role, index))


class StateFile:
    """The state of one supervised process; every change is written through at once under a lock. Only the end
    (finish) is written durably (fsync): the start, readiness and beats are progress a crash of the host makes moot,
    and hundreds of processes starting and beating at once each waited on the disk."""

    def __init__(self, path: str, role: str, index: int, kind: str, runtime: Dict[str, Any]) -> None:
        self.path = path
        self._lock = threading.Lock()
        now = time.time()
        self._data: Dict[str, Any] = {
            "role": role, "index": index, "kind": kind, "status": RUNNING,
            "pid": {"agent": os.getpid(), "child": None}, "hostname": socket.gethostname(),
            "started_at": iso(now), "started_at_epoch": now,
            "last_heartbeat": iso(now), "last_heartbeat_epoch": now,
            "heartbeat_interval": float(runtime["heartbeat_interval"]),
            "hung_after": float(runtime["hung_after"]),
            "exit_code": None, "finished_at": None, "restarts": 0, "ready": False, "ready_at": None,
            "worker_heartbeat": None,
        }
        if runtime.get("worker_heartbeat"):
            self._data["worker_heartbeat"] = {"last": None, "last_epoch": None}
        os.makedirs(os.path.dirname(path), exist_ok=True)

    @property
    def terminal(self) -> bool:
        return self._data["status"] in TERMINAL

    @property
    def ready(self) -> bool:
        return bool(self._data["ready"])

    def mark_ready(self) -> None:
        with self._lock:
            if self._data["status"] in TERMINAL or self._data["ready"]:
                return
            self._data["ready"], self._data["ready_at"] = True, iso(time.time())
            self._write(durable=False)

    def started(self, child_pid: int, ready: bool = False) -> None:
        """The process runs; `ready` when nothing more is needed for it to count as ready (one write)."""
        with self._lock:
            self._data["pid"]["child"] = child_pid
            if ready:
                self._data["ready"], self._data["ready_at"] = True, iso(time.time())
            self._write(durable=False)

    def beat(self, worker_beat_epoch: Optional[float] = None) -> None:
        """Refresh the agent heartbeat (and the worker's own beat when known); no-op once terminal."""
        with self._lock:
            if self._data["status"] in TERMINAL:
                return
            now = time.time()
            self._data["last_heartbeat"], self._data["last_heartbeat_epoch"] = iso(now), now
            if worker_beat_epoch is not None and self._data["worker_heartbeat"] is not None:
                self._data["worker_heartbeat"] = {"last": iso(worker_beat_epoch), "last_epoch": worker_beat_epoch}
            self._write(durable=False)

    def finish(self, status: str, exit_code: Optional[int], signal: Optional[int] = None,
               error: Optional[str] = None) -> None:
        """Record a terminal status once; later calls keep the first one.

        `signal`: the process died from this signal without the agent asking (kill -9, a segfault). `error`: why
        the agent could not start it (a busy port, an unreadable secret), shown by `areal status` and `start`."""
        with self._lock:
            if self._data["status"] in TERMINAL:
                return
            now = time.time()
            self._data.update(status=status, exit_code=exit_code, finished_at=iso(now))
            if signal is not None:
                self._data["signal"] = signal
            if error is not None:
                self._data["error"] = error
            self._write()

    def _write(self, durable: bool = True) -> None:
        atomic_write_json(self.path, self._data, durable)


def _pid_state(pid: int) -> str:
    """'alive', 'dead' or 'unknown' (another host); zombies count as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "dead"
    except PermissionError:
        return "alive"
    except OSError:
        return "dead"
    try:
        with open("/proc/%d/stat" % pid, encoding="utf-8", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        if fields and fields[0] in ("Z", "X"):
            return "dead"
    except (OSError, IndexError):
        pass
    return "alive"


def derive(data: Dict[str, Any], now: Optional[float] = None, host: Optional[str] = None) -> Dict[str, Any]:
    """healthy / hung / crashed from a running state; terminal statuses pass through.

    crashed = the state says running but the agent (the process that writes it) is dead, so nobody will ever
    finish it; or the worker died from a signal the agent did not send (recorded as `failed` with 128+signal
    and `signal`). An orderly stop is `stopped`."""
    now = time.time() if now is None else now
    status = data.get("status")
    result = {"role": data.get("role"), "index": data.get("index"), "kind": data.get("kind"),
              "state_status": status, "exit_code": data.get("exit_code"), "pid": data.get("pid"),
              "finished_at": data.get("finished_at"),
              "error": data.get("error"), "message": str(data.get("error") or "")}
    if status in TERMINAL:
        result["status"] = status
        if status == FAILED and data.get("signal"):  # died from a signal nobody sent it on purpose
            result.update(status="crashed", message="killed by signal %d" % data["signal"])
        return result
    if status != RUNNING:
        raise ValueError("unknown status %r" % (status,))
    hung_after = float(data["hung_after"])
    age = now - float(data["last_heartbeat_epoch"])
    result["heartbeat_age"] = round(age, 3)
    local = data.get("hostname") == (host or socket.gethostname())
    agent = _pid_state(int(data["pid"]["agent"])) if local else "unknown"
    if agent == "dead":
        result.update(status="crashed", message="agent pid %s is gone" % data["pid"]["agent"])
    elif age > hung_after:
        result.update(status="hung", message="agent heartbeat %.1fs old (hung_after %.1fs)" % (age, hung_after))
    elif _worker_beat_stale(data, now, hung_after):
        result.update(status="hung", message="the worker's own heartbeat is older than %.1fs" % hung_after)
    elif not data.get("ready", True):
        result.update(status="starting", message="not ready yet (its readiness probe has not passed)")
    else:
        result["status"] = "healthy"
    return result


def _worker_beat_stale(data: Dict[str, Any], now: float, hung_after: float) -> bool:
    beat = data.get("worker_heartbeat")
    if beat is None:
        return False
    last = beat.get("last_epoch")
    baseline = float(last) if last is not None else float(data["started_at_epoch"])
    return now - baseline > hung_after


def read_state(path: str, now: Optional[float] = None, host: Optional[str] = None) -> Dict[str, Any]:
    """Derived status of one state file; an unreadable or malformed file is status `corrupt`, never a crash."""
    try:
        data = json.loads(read_bytes(path, MAX_STATE).decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        result = derive(data, now, host)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        name = os.path.basename(path)[: -len(".json")]
        return {"role": name.rpartition(".")[0], "index": name.rpartition(".")[2], "status": "corrupt",
                "message": "%s: %s: %s" % (path, type(exc).__name__, exc)}
    result["path"] = path
    return result


def read_run(run_dir: str, now: Optional[float] = None) -> List[Dict[str, Any]]:
    """Every state file under DIR/state (temp files skipped), sorted by name."""
    directory = os.path.join(run_dir, "state")
    names = sorted(n for n in os.listdir(directory) if n.endswith(".json") and not n.startswith("."))
    host = socket.gethostname()
    return [read_state(os.path.join(directory, name), now, host) for name in names]
