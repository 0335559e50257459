"""Run state files: atomic UTF-8 writes, the derived health (healthy/hung/crashed/terminal), corrupt files.

Run by pytest; pure in-process checks plus the `status` command line."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from areal_compiler.agent.state import StateFile, atomic_write_json, derive, read_run, read_state

RUNTIME = {"heartbeat_interval": 0.2, "hung_after": 1.0}


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def running(**overrides):
    now = time.time()
    data = {"role": "w", "index": 0, "kind": "worker", "status": "running", "hostname": socket.gethostname(),
            "pid": {"agent": os.getpid(), "child": None}, "started_at_epoch": now, "last_heartbeat_epoch": now,
            "hung_after": 1.0, "exit_code": None, "worker_heartbeat": None}
    data.update(overrides)
    return data


def test_derive_each_status():
    now = time.time()
    assert derive(running(), now)["status"] == "healthy"
    assert derive(running(last_heartbeat_epoch=now - 5), now)["status"] == "hung"
    assert derive(running(pid={"agent": dead_pid(), "child": 1}), now)["status"] == "crashed"
    elsewhere = running(hostname="another-host", pid={"agent": dead_pid(), "child": 1})
    assert derive(elsewhere, now)["status"] == "healthy"  # a pid on another host cannot be checked
    beats = running(worker_heartbeat={"last": None, "last_epoch": now - 3})
    assert derive(beats, now)["status"] == "hung"
    assert derive(running(worker_heartbeat={"last": None, "last_epoch": None}, started_at_epoch=now - 3),
                  now)["status"] == "hung"
    for status in ("completed", "failed", "stopped"):
        assert derive(running(status=status, exit_code=1), now)["status"] == status


@pytest.mark.parametrize("content", [b"{\"status\": \"runn", b"\xff\xfe garbage", b"[1, 2, 3]",
                                     b'{"status": "running"}', b'{"status": "exploded"}', b""])
def test_corrupt_state_is_reported_not_crashed_on(tmp_path, content):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "w.0.json").write_bytes(content)
    atomic_write_json(str(tmp_path / "state" / "w.1.json"), running(index=1))
    rows = read_run(str(tmp_path))
    assert [(r["index"], r["status"]) for r in rows] == [("0", "corrupt"), (1, "healthy")]
    assert "w.0.json" in rows[0]["message"]


def test_status_command_prints_a_corrupt_file(tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "w.0.json").write_bytes(b"{not json")
    for extra in ([], ["--json"]):
        result = subprocess.run([sys.executable, "-m", "areal_compiler.agent", "status", "--run-dir",
                                 str(tmp_path)] + extra, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0 and "corrupt" in result.stdout
    assert json.loads(result.stdout)["data"]["workers"][0]["status"] == "corrupt"


def test_atomic_write_never_shows_a_partial_file(tmp_path):
    path = str(tmp_path / "s.json")
    versions = [{"n": i, "name": "wörker-✓", "pad": "x" * (200000 if i % 2 else 10)} for i in range(2)]
    atomic_write_json(path, versions[0])
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            atomic_write_json(path, versions[i % 2])
            i += 1
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(300):
            with open(path, encoding="utf-8") as handle:
                assert json.load(handle) in versions
    finally:
        stop.set()
        thread.join()
    assert sorted(os.listdir(tmp_path)) == ["s.json"]
    assert "wörker-✓".encode("utf-8") in (tmp_path / "s.json").read_bytes()


def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path):
    path = str(tmp_path / "s.json")
    atomic_write_json(path, {"ok": True})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"bad": object()})
    assert json.loads((tmp_path / "s.json").read_text(encoding="utf-8")) == {"ok": True}
    assert os.listdir(tmp_path) == ["s.json"]


def test_state_file_lifecycle(tmp_path):
    path = str(tmp_path / "state" / "w.0.json")
    state = StateFile(path, "w", 0, "worker", dict(RUNTIME, worker_heartbeat=True))
    state.started(1234)
    first = json.loads(open(path, encoding="utf-8").read())
    assert first["pid"] == {"agent": os.getpid(), "child": 1234} and first["status"] == "running"
    assert first["last_heartbeat"].endswith("+00:00") and isinstance(first["last_heartbeat_epoch"], float)
    state.beat(worker_beat_epoch=first["started_at_epoch"] + 1)
    assert read_state(path)["status"] == "starting"  # running, but its readiness probe has not passed
    state.mark_ready()
    assert read_state(path)["status"] == "healthy" and json.loads(open(path, encoding="utf-8").read())["ready_at"]
    state.finish("failed", 3)
    state.finish("stopped", 0)  # the first terminal status stays
    state.beat()
    final = json.loads(open(path, encoding="utf-8").read())
    assert (final["status"], final["exit_code"], final["restarts"]) == ("failed", 3, 0)
    assert final["worker_heartbeat"]["last_epoch"] == first["started_at_epoch"] + 1
