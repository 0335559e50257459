"""Small stdlib HTTP clients for an agent: AgentClient (ports, fork, kill, health) and GateClient.

Used by forks.py for fork orchestration; workers import GateClient from agent.pyz or copy this one file."""
from __future__ import annotations

import http.client
import json
import os
from typing import Any, Dict, List, Optional
from urllib.parse import urlsplit


class AgentError(Exception):
    """An agent answered with an error status (or could not be reached: status 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__("HTTP %d: %s" % (status, message) if status else message)
        self.status = status
        self.message = message


def token_from_env(environ: Optional[Dict[str, str]] = None) -> Optional[str]:
    """The bearer token: contents of $AREAL_AGENT_TOKEN_FILE, else $AREAL_AGENT_TOKEN; None when unset/empty."""
    environ = os.environ if environ is None else environ
    path = environ.get("AREAL_AGENT_TOKEN_FILE")
    if path:
        with open(path, encoding="utf-8") as handle:
            token = handle.read().strip()
    else:
        token = environ.get("AREAL_AGENT_TOKEN", "").strip()
    return token or None


class _JsonClient:
    """One keep-alive connection to one agent; not thread-safe (use one client per thread)."""

    def __init__(self, url: str, token: Optional[str], timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError("agent URL must look like http://host:port, got %r" % url)
        self._address = (parts.hostname, parts.port)
        self._token, self._timeout = token, timeout
        self._conn: Optional[http.client.HTTPConnection] = None

    def request(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        data = b"" if body is None else json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Content-Length": str(len(data))}
        if self._token:
            headers["Authorization"] = "Bearer " + self._token
        reused = self._conn is not None
        try:
            return self._once(method, path, data, headers)
        except (ConnectionResetError, BrokenPipeError) as exc:  # an idle keep-alive the server closed
            self.close()
            if not reused:
                raise AgentError(0, "agent %s:%d: %s" % (self._address + (exc,))) from None
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise AgentError(0, "agent %s:%d unreachable: %s" % (self._address + (exc,))) from None
        try:
            return self._once(method, path, data, headers)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise AgentError(0, "agent %s:%d unreachable: %s" % (self._address + (exc,))) from None

    def _once(self, method: str, path: str, data: bytes, headers: Dict[str, str]) -> Dict[str, Any]:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self._address[0], self._address[1], timeout=self._timeout)
        self._conn.request(method, path, body=data, headers=headers)
        response = self._conn.getresponse()
        raw = response.read()
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        try:
            payload = json.loads(raw.decode("utf-8")) if raw else {}
        except ValueError:
            payload = {"error": raw[:200].decode("utf-8", "replace")}
        if response.status >= 400:
            raise AgentError(response.status, str(payload.get("error", payload)))
        return payload

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class AgentClient(_JsonClient):
    """The fork protocol of one agent (AReaL's: alloc_ports, fork, kill_forked_worker, health)."""

    def health(self) -> Dict[str, Any]:
        return self.request("GET", "/health")

    def alloc_ports(self, count: int) -> Dict[str, Any]:
        return self.request("POST", "/alloc_ports", {"count": count})

    def fork(self, role: str, worker_index: int, raw_cmd: List[str], env: Optional[Dict[str, str]] = None,
             ports: Optional[List[int]] = None) -> Dict[str, Any]:
        body: Dict[str, Any] = {"role": role, "worker_index": worker_index, "raw_cmd": raw_cmd}
        if env:
            body["env"] = env
        if ports:
            body["ports"] = ports
        return self.request("POST", "/fork", body)

    def kill_forked_worker(self, role: str, worker_index: int) -> Dict[str, Any]:
        return self.request("POST", "/kill_forked_worker", {"role": role, "worker_index": worker_index})

    def forked(self) -> List[Dict[str, Any]]:
        return self.request("GET", "/forked")["forked"]

    def wait_forked(self, role: str, worker_index: int, timeout: float) -> Dict[str, Any]:
        """The child's /forked entry once it ended or listens, or after timeout seconds (the agent holds 5 s)."""
        return self.request("POST", "/forked/wait", {"role": role, "worker_index": worker_index,
                                                     "timeout": timeout})["forked"]

    def heartbeat(self, role: Optional[str] = None, worker_index: Optional[int] = None) -> Dict[str, Any]:
        body = {} if role is None else {"role": role, "worker_index": worker_index}
        return self.request("POST", "/heartbeat", body)


class GateClient(_JsonClient):
    """The staleness gate served by one agent: GateClient(os.environ["AREAL_GATE_URL"], token)."""

    def state(self) -> Dict[str, Any]:
        return self.request("GET", "/gate")

    def enqueue(self) -> Dict[str, Any]:
        return self.request("POST", "/gate/enqueue", {})

    def try_submit(self) -> bool:
        """Start one rollout only if the gate has capacity (atomic on the server)."""
        return bool(self.request("POST", "/gate/submit", {})["granted"])

    def submit(self) -> Dict[str, Any]:
        """Record a `submitted` event unconditionally (the caller checked capacity itself)."""
        return self.request("POST", "/gate/submit", {"force": True})

    def accept(self) -> Dict[str, Any]:
        return self.request("POST", "/gate/accept", {})

    def reject(self) -> Dict[str, Any]:
        return self.request("POST", "/gate/reject", {})

    def set_version(self, version: int) -> Dict[str, Any]:
        return self.request("POST", "/gate/version", {"version": version})

    def recover(self, version: int) -> Dict[str, Any]:
        return self.request("POST", "/gate/recover", {"version": version})
