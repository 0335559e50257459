"""Malformed and hostile HTTP against a real agent: every answer is JSON, client faults leave no traceback in the
agent's log, short bodies answer 400 at once, and idle connections cannot starve real requests."""
from __future__ import annotations

import http.client
import json
import socket
import time

import pytest

from agent_helpers import TOKEN, agent_url, make_plan, script, start_agent, wait_until, worker
from areal_compiler.agent.client import AgentClient, AgentError
from areal_compiler.agent.server import MAX_CONNECTIONS

SLEEP = script("import time; time.sleep(120)")


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    plan = make_plan(tmp / "plan.json", [worker("w", 0, SLEEP)])
    proc = start_agent(plan, "w/0", tmp / "run")
    url = agent_url(plan, "w", 0)
    client = AgentClient(url, TOKEN)
    wait_until(lambda: _healthy(client), what="agent up")
    host, port = url[len("http://"):].split(":")
    yield {"address": (host, int(port)), "proc": proc, "client": client}
    client.close()
    proc.terminate()
    _, stderr = proc.communicate(timeout=30)
    assert "Traceback" not in stderr, stderr  # the whole module's faults left no traceback in the agent log


def _healthy(client):
    try:
        return client.health()
    except AgentError:
        return None


def _send(address, data: bytes, read: bool = True, timeout: float = 10) -> bytes:
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(data)
        if not read:
            return b""
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def _parse(response: bytes) -> tuple[int, dict, dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body) if body else {}


@pytest.mark.parametrize("method", ["PUT", "DELETE", "OPTIONS", "PATCH"])
def test_other_methods_are_405_in_json(agent, method):
    status, headers, body = _parse(_send(agent["address"], f"{method} /fork HTTP/1.1\r\nHost: x\r\n"
                                                           "Content-Length: 0\r\n\r\n".encode()))
    assert status == 405 and headers["Content-Type"] == "application/json" and body["status"] == "error"
    assert headers["Allow"] == "GET, POST"


def test_head_is_405_without_a_body(agent):
    conn = http.client.HTTPConnection(*agent["address"], timeout=10)
    conn.request("HEAD", "/health")
    response = conn.getresponse()
    assert response.status == 405 and response.getheader("Content-Type") == "application/json"
    conn.close()


@pytest.mark.parametrize("request_bytes, status", [
    (b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n", 501),
    (b"GET /health HTTP/9.9\r\n\r\n", 505),
    (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414),
    (b"GET /health HTTP/1.1\r\n" + b"X: y\r\n" * 120 + b"\r\n", 431),
])
def test_the_base_servers_own_errors_are_json(agent, request_bytes, status):
    got, headers, body = _parse(_send(agent["address"], request_bytes))
    assert got == status and headers["Content-Type"] == "application/json" and body["status"] == "error"


def test_server_header_does_not_name_python(agent):
    conn = http.client.HTTPConnection(*agent["address"], timeout=10)
    conn.request("GET", "/health")
    response = conn.getresponse()
    response.read()
    assert response.getheader("Server") == "areal-agent"
    conn.close()


def test_short_body_is_a_quick_400(agent):
    start = time.monotonic()
    status, _, body = _parse(_send(agent["address"], ("POST /heartbeat HTTP/1.1\r\nHost: x\r\n"
                                                      f"Authorization: Bearer {TOKEN}\r\nContent-Length: 100\r\n\r\n"
                                                      '{"role"').encode()))
    assert status == 400 and "shorter than its Content-Length" in body["error"]
    assert time.monotonic() - start < 5  # was a 500 after 30 s


def test_clients_that_vanish_mid_request_leave_no_traceback(agent):
    for _ in range(20):
        _send(agent["address"], b"POST /fork HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{", read=False)
        _send(agent["address"], b"GET /heal", read=False)
        with socket.create_connection(agent["address"]) as sock:  # reset (RST) mid-request
            sock.sendall(b"POST /heartbeat HTTP/1.1\r\nContent-Length: 10\r\n\r\n")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    assert agent["client"].health()["status"] == "healthy"  # the module fixture then checks the log


def test_nul_in_a_fork_command_is_a_400(agent):
    conn = http.client.HTTPConnection(*agent["address"], timeout=10)
    body = json.dumps({"role": "ref", "worker_index": 1, "raw_cmd": ["python3", "a\u0000b"]})
    conn.request("POST", "/fork", body, {"Authorization": "Bearer " + TOKEN})
    response = conn.getresponse()
    assert response.status == 400 and "NUL" in json.loads(response.read())["error"]
    conn.close()


@pytest.mark.parametrize("partial", [b"", b"GET /health HTT", b"GET /health HTTP/1.1\r\nX-Slow: 1\r\n"])
def test_idle_connections_do_not_block_requests(agent, partial):
    idle, start = [], time.monotonic()
    try:
        for _ in range(MAX_CONNECTIONS + 8):
            sock = socket.create_connection(agent["address"], timeout=10)
            if partial:
                sock.sendall(partial)
            idle.append(sock)
        assert time.monotonic() - start < 5  # a burst is queued, not dropped for SYN retries
        time.sleep(0.3)
        for _ in range(5):
            start = time.monotonic()
            client = AgentClient("http://%s:%d" % agent["address"], TOKEN, timeout=5)
            assert client.health()["status"] == "healthy"
            client.close()
            assert time.monotonic() - start < 2.5
    finally:
        for sock in idle:
            sock.close()
