"""The agent's HTTP API: health, port allocation, fork/kill of colocated workers, worker beats, the gate.

Started by supervisor.py on the worker's agent_port; every route but GET /health needs the bearer token."""
from __future__ import annotations

import hmac
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Tuple

from .gate import GateError
from .plan import command_problem

MAX_BODY = 64 * 1024
MAX_PORTS = 64
MAX_WAIT = 5.0  # seconds one POST /forked/wait may hold its connection


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
    if value is not None and any("\0" in item for item in value):
        raise HttpError(400, "field %r: a NUL character cannot be passed in argv" % name)
    return value


def _env(body: Dict[str, Any]) -> Dict[str, str]:
    env = _field(body, "env", dict, required=False) or {}
    problem = command_problem([], env)
    if problem:
        raise HttpError(400, "field 'env': %s" % problem)
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


def _wait_forked(agent: Any, body: Dict[str, Any]) -> Dict[str, Any]:
    """The child's /forked entry once it has ended or, with ports, listens on its first; else after `timeout`
    seconds (at most MAX_WAIT: the caller asks again)."""
    role, index = _field(body, "role", str), _index(body)
    seconds = body.get("timeout", MAX_WAIT)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < float("inf"):
        raise HttpError(400, "field 'timeout' must be a number of seconds")
    entry = agent.wait_forked(role, index, min(float(seconds), MAX_WAIT))
    if entry is None:
        raise HttpError(404, "no forked worker %s/%d" % (role, index))
    return {"status": "success", "forked": entry}


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
    ("POST", "/forked/wait"): _wait_forked,
    ("POST", "/heartbeat"): _heartbeat,
    ("GET", "/gate"): lambda agent, body: dict(_gate(agent).state(), status="success"),
    ("POST", "/gate/enqueue"): _gate_event("enqueue"),
    ("POST", "/gate/submit"): _gate_submit,
    ("POST", "/gate/accept"): _gate_event("accept"),
    ("POST", "/gate/reject"): _gate_event("reject"),
    ("POST", "/gate/version"): _gate_version("set_version"),
    ("POST", "/gate/recover"): _gate_version("recover"),
}


IDLE_TIMEOUT = 5.0  # seconds a connection may wait for its next request, and for each read of one
BODY_TIMEOUT = 2.0  # seconds to receive a whole body: a body shorter than its Content-Length is a quick 400
MAX_CONNECTIONS = 64  # one thread each; when all are taken, the longest-idle connection makes room
SLOT_WAIT = 2.0  # seconds a new connection waits for a slot when every connection is busy with a request
NOT_ALLOWED = ("PUT", "DELETE", "HEAD", "OPTIONS", "PATCH")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall per request
    server_version = "areal-agent"  # never the Python version
    server: "AgentServer"
    _consumed = False

    def version_string(self) -> str:
        return self.server_version

    def handle_one_request(self) -> None:
        """One request; a client that goes away or goes silent is simply closed (no traceback, no log)."""
        self.server.mark(self.connection, busy=False)
        try:
            self.connection.settimeout(IDLE_TIMEOUT)
            self._consumed = False
            super().handle_one_request()
        except OSError:  # reset, broken pipe, timeout: the client's fault, nothing left to answer
            self.close_connection = True

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        if parsed:  # the request line and headers are in: from now on this connection is busy, not idle
            self.server.mark(self.connection, busy=True)
        return parsed

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """The base class's own errors (bad request line, headers too large, unknown method) as JSON too."""
        self.close_connection = True
        self._reply(code, {"status": "error", "error": message or self.responses.get(code, ("error",))[0]})

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _not_allowed(self) -> None:
        self.close_connection = True  # any body is left unread
        self._reply(405, {"status": "error", "error": "method %s is not allowed: use GET or POST" % self.command})

    do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = _not_allowed

    def _dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
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
        except ConnectionError:
            raise  # the client went away mid-reply: handle_one_request closes the connection
        except Exception as exc:  # never let a request kill the thread silently
            self.server.agent.log("request %s %s failed: %s: %s" % (method, path, type(exc).__name__, exc))
            self._reply(500, {"status": "error", "error": "%s: %s" % (type(exc).__name__, exc)})

    def _authenticate(self) -> None:
        header = self.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise HttpError(401, "missing bearer token")
        if not hmac.compare_digest(given.strip().encode("utf-8", "replace"), self.server.token):
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
        raw = self._read(length)
        if method == "GET" or not raw.strip():
            return {}
        try:
            body = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON within the size limit
            raise HttpError(400, "body is not valid JSON") from None
        if not isinstance(body, dict):
            raise HttpError(400, "body must be a JSON object")
        return body

    def _read(self, length: int) -> bytes:
        """Exactly `length` body bytes within BODY_TIMEOUT, or a 400 (the connection is then closed)."""
        deadline, chunks, got = time.monotonic() + BODY_TIMEOUT, [], 0
        try:
            while got < length:
                self.connection.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = self.rfile.read1(length - got)
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
        except socket.timeout:
            pass
        if got < length:
            self.close_connection = True
            raise HttpError(400, "body shorter than its Content-Length (%d of %d bytes)" % (got, length))
        self._consumed = True
        return b"".join(chunks)

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
        if self.request_version not in ("HTTP/1.0", "HTTP/1.1"):  # unreadable or 0.9: still a status line
            self.request_version, self.close_connection = "HTTP/1.1", True
        if status >= 400 and not self._consumed:  # unread body bytes would poison the next request
            self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 405:
            self.send_header("Allow", "GET, POST")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Quiet: requests are not logged (the request line never holds the token, headers are never logged)."""


class AgentServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # listen backlog: a burst of connections is queued, not dropped for a 1 s SYN retry

    def __init__(self, address: Tuple[str, int], agent: Any, token: str) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.agent = agent
        self.token = token.encode("utf-8")
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._lock = threading.Lock()
        self._idle: Dict[Any, float] = {}  # connection -> since when it waits for a request line and headers
        super().__init__(address, Handler)

    def mark(self, connection: Any, busy: bool) -> None:
        with self._lock:
            if busy:
                self._idle.pop(connection, None)
            else:
                self._idle[connection] = time.monotonic()

    def _evict_idle(self) -> None:
        """Close the read side of the longest-idle connection: its thread sees end of input and frees its slot."""
        with self._lock:
            if not self._idle:
                return
            connection = min(self._idle, key=self._idle.__getitem__)
            del self._idle[connection]
            try:
                connection.shutdown(socket.SHUT_RD)
            except OSError:
                pass

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self._evict_idle()  # idle connections never starve a client with a request to make
            if not self.slots.acquire(timeout=SLOT_WAIT):
                self.shutdown_request(request)  # every slot busy with a request: refuse, no thread
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

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._idle.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client fault is no news; anything else is one log line, never a traceback in the agent log."""
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            self.agent.log("connection from %s failed: %s: %s" % (client_address[0], type(error).__name__, error))

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                  name="agent-http", daemon=True)
        thread.start()
        return thread
