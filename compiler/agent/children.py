"""The agent's table of processes: its worker and forked children, their state files, beats and ports.

Owned by supervisor.py; read and changed from server.py request threads under one short-held lock."""
from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from .procs import exit_code
from .state import COMPLETED, FAILED, StateFile


def health_ok(host: str, port: int, timeout: float = 0.3) -> bool:
    """The readiness probe: GET /health on host:port answers 200 within the timeout."""
    import http.client

    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/health")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


class Child:
    """One supervised process (the worker or a forked child) and everything the agent knows about it."""

    def __init__(self, role: str, index: int, kind: str, state: StateFile, ports: List[int],
                 heartbeat_file: Optional[str], ready_port: Optional[int] = None) -> None:
        self.role, self.index, self.kind = role, index, kind
        self.state, self.ports, self.heartbeat_file = state, ports, heartbeat_file
        self.ready_port = ready_port  # GET /health there must answer 200 before it is ready; None: running is ready
        self.probed_at = float("-inf")
        self.proc: Optional[subprocess.Popen] = None
        self.posted_beat: Optional[float] = None

    @property
    def key(self) -> Tuple[str, int]:
        return (self.role, self.index)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def worker_beat(self) -> Optional[float]:
        """Latest own beat of the worker: a touch of its heartbeat file or a POST /heartbeat."""
        beats = [self.posted_beat] if self.posted_beat is not None else []
        if self.heartbeat_file:
            try:
                beats.append(os.stat(self.heartbeat_file).st_mtime)
            except OSError:
                pass
        return max(beats) if beats else None

    def check_exit(self) -> Optional[int]:
        """Exit code once the process has ended (recorded in its state file), else None."""
        if self.proc is None or self.proc.poll() is None:
            return None
        code = exit_code(self.proc.returncode)
        signal = -self.proc.returncode if self.proc.returncode < 0 else None
        self.state.finish(COMPLETED if code == 0 else FAILED, code, signal)
        return code

    def describe(self, host: str) -> Dict[str, Any]:
        alive = self.alive()
        return {"role": self.role, "worker_index": self.index, "pid": self.proc.pid if self.proc else None,
                "alive": alive, "exit_code": None if alive or not self.proc else exit_code(self.proc.returncode),
                "ports": list(self.ports), "listening": alive and bool(self.ports) and _listening(host, self.ports[0]),
                "host": host}


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class ChildTable:
    """Forked children by (role, index) and the ports handed out; the lock guards only these tables."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.lock = threading.Lock()
        self._forked: Dict[Tuple[str, int], Child] = {}
        self._reserved: set = set()
        self._ports: set = set()

    def reserve(self, key: Tuple[str, int]) -> bool:
        """Claim a (role, index) for a new fork; False while a live child or another request holds it."""
        with self.lock:
            current = self._forked.get(key)
            if key in self._reserved or (current is not None and current.alive()):
                return False
            self._reserved.add(key)
            return True

    def release(self, key: Tuple[str, int], child: Optional[Child]) -> None:
        with self.lock:
            self._reserved.discard(key)
            if child is not None:
                self._forked[key] = child

    def pop(self, key: Tuple[str, int]) -> Optional[Child]:
        with self.lock:
            return self._forked.pop(key, None)

    def get(self, key: Tuple[str, int]) -> Optional[Child]:
        with self.lock:
            return self._forked.get(key)

    def wait_up(self, key: Tuple[str, int], host: str, seconds: float) -> Optional[Dict[str, Any]]:
        """A forked child's entry (as GET /forked has it) once it has ended or, when it has ports, accepts
        connections on the first; or when SECONDS have passed; None for an unknown child. Looks every 5 ms, then
        every 20 ms (a refused connect costs next to nothing): the caller learns that the child is up when it is."""
        deadline, pause = time.monotonic() + seconds, 0.005
        while True:
            child = self.get(key)
            if child is None:
                return None
            entry = child.describe(host)
            if not entry["alive"] or entry["listening"] or not child.ports or time.monotonic() >= deadline:
                return entry
            time.sleep(pause)
            pause = min(pause * 2, 0.02)

    def children(self) -> List[Child]:
        with self.lock:
            return list(self._forked.values())

    def pop_all(self) -> List[Child]:
        with self.lock:
            children = list(self._forked.values())
            self._forked.clear()
            return children

    def allocated_ports(self) -> set:
        with self.lock:
            return set(self._ports)

    def alloc_ports(self, count: int) -> List[int]:
        """count free TCP ports on the agent's host, never one handed out before by this agent."""
        ports: List[int] = []
        deadline = time.monotonic() + 5.0
        while len(ports) < count:
            if time.monotonic() > deadline:
                raise OSError("could not find %d free ports on %s" % (count, self.host))
            with socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET) as sock:
                sock.bind((self.host, 0))
                port = sock.getsockname()[1]
            with self.lock:
                if port in self._ports:
                    continue
                self._ports.add(port)
            ports.append(port)
        return ports
