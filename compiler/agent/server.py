"""The agent's HTTP API: health, port allocation, fork/kill of colocated workers, worker beats, the gate.

Started by supervisor.py on the worker's agent_port; every route but GET /health needs the bearer token."""
from __future__ import annotations

import hmac
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Tuple

from .gate import GateError

MAX_BODY = 64 * 1024
MAX_PORTS = 64


class HttpError(Exception):
    """An error answer: HTTP status and a message (sent as {"status": "error", "error": message})."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _field(body: Dict[str, Any], name: str, kind: type, required: bool = True) -> Any:
    if name not in body:
        if required:
            raise HttpError(400, "missing field %r" % name)
        return None
    value = body[name]
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise HttpError(400, "field %r must be %s" % (name, kind.__name__))
    return value


def _str_list(body: Dict[str, Any], name: str, required: bool) -> Optional[List[str]]:
    value = _field(body, name, list, required)
    if value is not None and (not value or not all(isinstance(item, str) for item in value)):
        raise HttpError(400, "field %r must be a non-empty list of strings" % name)
    return value


def _env(body: Dict[str, Any]) -> Dict[str, str]:
    env = _field(body, "env", dict, required=False) or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise HttpError(400, "field 'env' must map strings to strings")
    return env


def _index(body: Dict[str, Any]) -> int:
    index = _field(body, "worker_index", int)
    if index < 0:
        raise HttpError(400, "field 'worker_index' must not be negative")
    return index


# -- routes: each takes (agent, body) and returns a JSON-able dict --
def _alloc_ports(agent: Any, body: Dict[str, Any]) -> Dict[str, Any]:
    count = _field(body, "count", int)
    if not 0 < count <= MAX_PORTS:
        raise HttpError(400, "field 'count' must be between 1 and %d" % MAX_PORTS)
    return {"status": "success", "ports": agent.alloc_ports(count), "host": agent.host}


def _fork(agent: Any, body: Dict[str, Any]) -> Dict[str, Any]:
    role = _field(body, "role", str)
    index = _index(body)
    argv = _str_list(body, "raw_cmd", required=True)
    ports = _field(body, "ports", list, required=False) or []
    if not all(isinstance(p, int) and not isinstance(p, bool) for p in ports):
        raise HttpError(400, "field 'ports' must be a list of integers")
    pid = agent.fork(role, index, argv, _env(body), ports)
    return {"status": "success", "host": agent.host, "pid": pid}


def _kill(agent: Any, body: Dict[str, Any]) -> Dict[str, Any]:
    role, index = _field(body, "role", str), _index(body)
    if not agent.kill_forked(role, index):
        raise HttpError(404, "no forked worker %s/%d" % (role, index))
    return {"status": "success"}


def _heartbeat(agent: Any, body: Dict[str, Any]) -> Dict[str, Any]:
    role = _field(body, "role", str, required=False)
    index = _index(body) if role is not None else None
    if not agent.record_beat(role, index):
        raise HttpError(404, "no worker %s/%s on this agent" % (role, index))
    return {"status": "success"}


def _gate(agent: Any) -> Any:
    if agent.gate is None:
        raise HttpError(404, "this agent does not serve the staleness gate")
    return agent.gate


def _gate_version(method: str) -> Callable[[Any, Dict[str, Any]], Dict[str, Any]]:
    def route(agent: Any, body: Dict[str, Any]) -> Dict[str, Any]:
        return dict(getattr(_gate(agent), method)(_field(body, "version", int)), status="success")
    return route


def _gate_event(method: str) -> Callable[[Any, Dict[str, Any]], Dict[str, Any]]:
    def route(agent: Any, body: Dict[str, Any]) -> Dict[str, Any]:
        return dict(getattr(_gate(agent), method)(), status="success")
    return route


def _gate_submit(agent: Any, body: Dict[str, Any]) -> Dict[str, Any]:
    """try_submit; {"force": true} records an unconditional `submitted` (a caller that checked capacity itself)."""
    if _field(body, "force", bool, required=False):
        return dict(_gate(agent).submit(), status="success", granted=True)
    granted, state = _gate(agent).try_submit_state()
    return dict(state, status="success", granted=granted)


ROUTES: Dict[Tuple[str, str], Callable[[Any, Dict[str, Any]], Dict[str, Any]]] = {
    ("POST", "/alloc_ports"): _alloc_ports,
    ("POST", "/fork"): _fork,
    ("POST", "/kill_forked_worker"): _kill,
    ("GET", "/forked"): lambda agent, body: {"status": "success", "forked": agent.forked()},
    ("POST", "/heartbeat"): _heartbeat,
    ("GET", "/gate"): lambda agent, body: dict(_gate(agent).state(), status="success"),
    ("POST", "/gate/enqueue"): _gate_event("enqueue"),
    ("POST", "/gate/submit"): _gate_submit,
    ("POST", "/gate/accept"): _gate_event("accept"),
    ("POST", "/gate/reject"): _gate_event("reject"),
    ("POST", "/gate/version"): _gate_version("set_version"),
    ("POST", "/gate/recover"): _gate_version("recover"),
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # a slow or silent client cannot hold a thread forever
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall per request
    server: "AgentServer"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        self._consumed = False
        try:
            if method == "GET" and path == "/health":
                self._body(method)
                self._reply(200, {"status": "healthy", "forked_children": self.server.agent.forked_alive()})
                return
            self._authenticate()
            route = ROUTES.get((method, path))
            if route is None:
                known = any(p == path for (_, p) in ROUTES)
                raise HttpError(405 if known else 404, "no route %s %s" % (method, path))
            self._reply(200, route(self.server.agent, self._body(method)))
        except HttpError as exc:
            self._reply(exc.status, {"status": "error", "error": exc.message})
        except GateError as exc:
            self._reply(409, {"status": "error", "error": str(exc)})
        except Exception as exc:  # never let a request kill the thread silently
            self.server.agent.log("request %s %s failed: %s: %s" % (method, path, type(exc).__name__, exc))
            self._reply(500, {"status": "error", "error": "%s: %s" % (type(exc).__name__, exc)})

    def _authenticate(self) -> None:
        header = self.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise HttpError(401, "missing bearer token")
        if not hmac.compare_digest(given.strip().encode("utf-8"), self.server.token):
            raise HttpError(401, "bad bearer token")

    def _body(self, method: str) -> Dict[str, Any]:
        raw_length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise HttpError(411, "send a Content-Length, chunked bodies are not accepted")
        try:
            length = int(raw_length) if raw_length else 0
        except ValueError:
            self.close_connection = True
            raise HttpError(400, "bad Content-Length") from None
        if length < 0:
            self.close_connection = True
            raise HttpError(400, "bad Content-Length")
        if length > MAX_BODY:
            self._drain(length)
            raise HttpError(413, "request body over %d bytes" % MAX_BODY)
        raw = self.rfile.read(length) if length else b""
        self._consumed = True
        if method == "GET" or not raw.strip():
            return {}
        try:
            body = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON within the size limit
            raise HttpError(400, "body is not valid JSON") from None
        if not isinstance(body, dict):
            raise HttpError(400, "body must be a JSON object")
        return body

    def _drain(self, length: int) -> None:
        """Read (and drop) a bounded part of an oversized body so the client sees our 413, then close."""
        self.close_connection = True
        left = min(length, 1024 * 1024)
        while left > 0:
            chunk = self.rfile.read(min(left, 65536))
            if not chunk:
                break
            left -= len(chunk)

    def _reply(self, status: int, payload: Dict[str, Any]) -> None:
        data = json.dumps(payload).encode("utf-8")
        if status >= 400 and not self._consumed:  # unread body bytes would poison the next request
            self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Quiet: requests are not logged (the request line never holds the token, headers are never logged)."""


MAX_CONNECTIONS = 64  # one thread each: more open connections (even idle, unauthenticated ones) are refused


class AgentServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: Tuple[str, int], agent: Any, token: str) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.agent = agent
        self.token = token.encode("utf-8")
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)  # over the limit: close at once, no thread
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                  name="agent-http", daemon=True)
        thread.start()
        return thread
