"""The staleness gate (AReaL's formula): how many rollouts may start without exceeding the allowed off-policyness.

Used in-process by anyone, and served over HTTP by the agent whose worker is the plan's `gate` (server.py)."""
from __future__ import annotations

import json
import math
import threading
import time
from typing import Any, Callable, Dict, Optional

EventSink = Callable[[Dict[str, Any]], None]


class GateError(ValueError):
    """An event that would corrupt the counters (accept/reject with nothing running, a negative version)."""


class StalenessGate:
    """capacity = min(max(1, mcr) - running, (s + v + 1) * max(1, bs) - (accepted + running)).

    max_staleness=None (or math.inf) is the eval-style gate: only the concurrency bound applies."""

    def __init__(self, max_staleness: Optional[float], consumer_batch_size: int,
                 max_concurrent_rollouts: Optional[int] = None, queue_size: Optional[int] = None,
                 on_event: Optional[EventSink] = None) -> None:
        bs = int(consumer_batch_size)
        mcr = bs if max_concurrent_rollouts is None else int(max_concurrent_rollouts)
        queue = 16 * mcr if queue_size is None else int(queue_size)
        if bs < 0 or mcr < 0 or (max_staleness is not None and max_staleness < 0):
            raise ValueError("gate sizes and staleness must not be negative")
        if queue < bs:
            raise ValueError("queue size is too small: %d < consumer_batch_size %d" % (queue, bs))
        infinite = max_staleness is None or math.isinf(max_staleness)
        self.max_staleness = None if infinite else int(max_staleness)
        self.consumer_batch_size, self.max_concurrent_rollouts, self.queue_size = bs, mcr, queue
        self._on_event = on_event
        self._lock = threading.Lock()
        self.version = self.enqueued = self.running = self.accepted = self.rejected = 0

    @classmethod
    def from_plan(cls, gate: Dict[str, Any], on_event: Optional[EventSink] = None) -> "StalenessGate":
        return cls(gate.get("max_head_offpolicyness"), gate["consumer_batch_size"],
                   gate.get("max_concurrent_rollouts"), gate.get("queue_size"), on_event)

    # -- derived values (call with the lock held, or accept a racy read) --
    def _capacity(self) -> int:
        concurrency = max(1, self.max_concurrent_rollouts) - self.running
        if self.max_staleness is None:
            return concurrency
        budget = (self.max_staleness + self.version + 1) * max(1, self.consumer_batch_size)
        return min(concurrency, budget - (self.accepted + self.running))

    def _pending_limit(self) -> Optional[int]:
        if self.max_staleness is None:
            return None
        return (self.max_staleness + 1) * self.consumer_batch_size

    def _snapshot(self) -> Dict[str, Any]:
        return {"version": self.version, "enqueued": self.enqueued, "running": self.running,
                "accepted": self.accepted, "rejected": self.rejected, "capacity": self._capacity(),
                "pending_limit": self._pending_limit(), "max_staleness": self.max_staleness,
                "max_concurrent_rollouts": self.max_concurrent_rollouts,
                "consumer_batch_size": self.consumer_batch_size, "queue_size": self.queue_size}

    def _event(self, name: str) -> Dict[str, Any]:
        snap = self._snapshot()
        if self._on_event is not None:
            self._on_event(dict(snap, event=name))
        return snap

    # -- public API --
    def capacity(self) -> int:
        with self._lock:
            return self._capacity()

    def pending_limit(self) -> float:
        with self._lock:
            limit = self._pending_limit()
        return math.inf if limit is None else limit

    def state(self) -> Dict[str, Any]:
        with self._lock:
            return self._snapshot()

    def enqueue(self) -> Dict[str, Any]:
        with self._lock:
            self.enqueued += 1
            return self._event("enqueued")

    def submit(self) -> Dict[str, Any]:
        """Unconditional `submitted` event (enqueued-1 when anything is enqueued, running+1)."""
        with self._lock:
            return self._submit()

    def _submit(self) -> Dict[str, Any]:
        self.enqueued = max(0, self.enqueued - 1)
        self.running += 1
        return self._event("submitted")

    def try_submit(self) -> bool:
        """Atomically submit one rollout only when capacity > 0; returns whether it was granted."""
        return self.try_submit_state()[0]

    def try_submit_state(self) -> tuple:
        with self._lock:
            if self._capacity() > 0:
                return True, self._submit()
            return False, self._snapshot()

    def accept(self) -> Dict[str, Any]:
        with self._lock:
            self._finish_one("accepted")
            self.accepted += 1
            return self._event("accepted")

    def reject(self) -> Dict[str, Any]:
        """Rejected rollouts never consume staleness budget."""
        with self._lock:
            self._finish_one("rejected")
            self.rejected += 1
            return self._event("rejected")

    def _finish_one(self, what: str) -> None:
        if self.running <= 0:
            raise GateError("cannot record a rollout %s: nothing is running" % what)
        self.running -= 1

    def set_version(self, version: int) -> Dict[str, Any]:
        with self._lock:
            self.version = _version(version)
            return self._event("version")

    def recover(self, version: int) -> Dict[str, Any]:
        """Recovered from a checkpoint of model version v: accepted = v * max(1, bs)."""
        with self._lock:
            self.version = _version(version)
            self.accepted = self.version * max(1, self.consumer_batch_size)
            return self._event("recovered")


def _version(version: Any) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise GateError("version must be a non-negative integer, got %r" % (version,))
    return version


class EventLog:
    """Appends every gate event as one JSON line (with a timestamp) to DIR/gate-events.jsonl."""

    def __init__(self, path: str) -> None:
        self._handle = open(path, "a", encoding="utf-8")

    def __call__(self, event: Dict[str, Any]) -> None:
        event["ts"] = time.time()
        self._handle.write(json.dumps(event, sort_keys=True) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()
