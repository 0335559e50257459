"""What the operator says about a run on this machine is true (issue 24): a start that times out stops what it
started, a run that lost a process is running (degraded) and never starting again, a start that fails says why,
a corrupt record does not keep a live run from being stopped, stop says what it did, logs name real workers."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from helpers import areal, free_port_block
from run_helpers import home, processes_of, record, statuses, variant, wait_for  # noqa: F401 (home: a fixture)


def ps(name: str) -> str | None:
    runs = json.loads(areal("ps", "-a", "-o", "json").stdout)["data"]["runs"]
    return next((r["status"] for r in runs if r["run"] == name), None)


def test_a_start_that_times_out_stops_everything_it_started(home, tmp_path):
    path = variant(tmp_path, "hasty", steps=100000, port=free_port_block(16))
    for timeout in ("0.1", "0.6"):  # before the runner has started anything, and while the agents come up
        result = areal("start", str(path), "--timeout", timeout, timeout=90)
        assert result.returncode == 1
        assert f"not every worker was ready after {timeout}s" in result.stderr.decode()
        assert result.stderr.decode().rstrip().endswith("the run was stopped"), result.stderr.decode()
        assert processes_of(home) == []  # nothing it started runs on
        assert ps("demo-cpu/hasty") == "stopped"


def test_a_run_that_loses_a_process_is_running_degraded_never_starting(home, tmp_path):
    path = variant(tmp_path, "lossy", steps=100000, port=free_port_block(16))
    assert areal("start", str(path), timeout=90).returncode == 0
    state = home / "runs" / "demo-cpu" / "lossy" / "run" / "state" / "proxy.1.json"
    os.kill(json.loads(state.read_text())["pid"]["child"], signal.SIGKILL)  # a forked proxy dies; the job goes on
    wait_for(lambda: statuses("lossy").get("proxy/1") == "crashed", 30, "proxy/1 reads crashed")
    assert ps("demo-cpu/lossy") == "running"
    shown = areal("status", "demo-cpu/lossy")
    assert shown.returncode == 1 and "running" in shown.stdout.decode().splitlines()[0]
    assert "degraded proxy/1 crashed" in shown.stdout.decode()


def test_a_foreground_run_reads_running_while_it_runs(home, tmp_path):
    """`areal run` through the console script (its command line names no areal module) is the run's runner."""
    path = variant(tmp_path, "fore", steps=100000, port=free_port_block(16))
    script = Path(sys.executable).parent / "areal"
    proc = subprocess.Popen([str(script), "run", str(path), "--quiet"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: set(statuses("fore").values()) == {"healthy"} and len(statuses("fore")) == 6, 60,
                 "a healthy run")
        assert ps("demo-cpu/fore") == "running"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 130


def test_a_start_whose_agent_cannot_listen_says_why_everywhere(home, tmp_path):
    path = variant(tmp_path, "busy", steps=100000, port=free_port_block(16))
    agent_port = next(w["agent_port"] for w in json.loads(areal("plan", "-o", "json", str(path)).stdout)["data"]
                      ["workers"] if w["role"] == "actor")
    cause = f"cannot listen on 127.0.0.1:{agent_port}"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", agent_port))
        taken.listen()
        result = areal("start", str(path), timeout=90)
    err = result.stderr.decode()
    assert result.returncode == 1 and f"actor/0 could not start: {cause}" in err, err
    assert err.rstrip().endswith("the run failed (exit code 2)"), err
    assert (record(home, "busy")["outcome"], record(home, "busy")["exit_code"]) == ("failed", 2)
    assert cause in record(home, "busy")["job"]["reason"] and "while the driver ran" not in err
    shown = json.loads(areal("status", "-o", "json", "demo-cpu/busy").stdout)["data"]
    actor = next(w for w in shown["workers"] if w["role"] == "actor")
    assert (actor["status"], actor["exit_code"]) == ("failed", 2) and cause in actor["message"]
    assert cause in shown["local"]["reason"]


def test_stop_finds_a_live_run_whose_record_is_corrupt(home, tmp_path):
    path = variant(tmp_path, "mangled", steps=100000, port=free_port_block(16))
    assert areal("start", str(path), timeout=90).returncode == 0
    rec = home / "runs" / "demo-cpu" / "mangled.json"
    rec.write_text("{not json")
    assert processes_of(home)
    stopped = areal("stop", "demo-cpu/mangled", timeout=90)
    said = stopped.stdout.decode()
    assert stopped.returncode == 0, stopped.stderr.decode()
    assert "stopped what" in said and "the runner (pid" in said and "4 agent(s)" in said and str(rec) in said
    assert processes_of(home) == []
    assert rec.read_text() == "{not json"  # kept for inspection
    again = areal("stop", "demo-cpu/mangled")
    assert again.returncode == 1 and "is corrupt" in again.stderr.decode()


def test_a_stop_that_cannot_finish_says_so_and_force_kills_what_is_left(home, tmp_path):
    path = variant(tmp_path, "stuck", steps=100000, port=free_port_block(16))
    path.write_text(path.read_text().replace("grace_period: 3", "grace_period: 0"))
    assert areal("start", str(path), timeout=90).returncode == 0
    runner = record(home, "stuck")["job"]["runner_pid"]
    os.kill(runner, signal.SIGSTOP)  # a runner that cannot act on SIGTERM: nothing stops in order
    begun = time.monotonic()
    gentle = areal("stop", "demo-cpu/stuck", timeout=90)
    assert gentle.returncode == 1
    assert re.fullmatch(rf"demo-cpu/stuck: still stopping \(the runner \(pid {runner}\), 4 agent\(s\) still run\); "
                        r"`areal stop --force demo-cpu/stuck` kills what is left\n", gentle.stdout.decode())
    assert time.monotonic() - begun >= 3 * 2 + 5  # it waited as long as the runner's own stop may take
    assert areal("stop", "--force", "demo-cpu/stuck", timeout=90).stdout.decode() == "demo-cpu/stuck: stopped\n"
    assert processes_of(home) == []
    assert ps("demo-cpu/stuck") == "stopped"


def test_run_output_aligns_and_logs_name_the_workers_that_exist(home, tmp_path):
    path = variant(tmp_path, "short", steps=2, port=free_port_block(16))
    result = areal("run", str(path), timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    prefixes = {line.index(" | ") for line in result.stdout.decode().splitlines() if " | " in line}
    assert prefixes == {len("rollout/0")}, prefixes  # one width for the whole run: the longest planned name
    for worker in ("nosuch", "rollout/9"):
        for follow in ([], ["-f"]):
            shown = areal("logs", "demo-cpu/short", worker, *follow, timeout=20)
            assert shown.returncode == 1 and shown.stdout == b""
            assert "has no worker or role" in shown.stderr.decode()
            assert "rollout/0,1" in shown.stderr.decode() and "driver/0" in shown.stderr.decode()
    assert areal("logs", "demo-cpu/short", "rollout/1").returncode == 0


def test_a_state_file_cannot_point_stop_at_another_runs_agent(tmp_path):
    """A run directory's state files name agent pids; `stop` of a run whose record is corrupt trusts a pid only when
    that process is an agent of this very run directory, so a damaged or planted state file stops nothing else."""
    import subprocess
    import sys

    from areal_compiler.runs import local_procs

    ours, theirs = tmp_path / "ours" / "run", tmp_path / "theirs" / "run"
    sleeper = "import time; time.sleep(60)"
    other = subprocess.Popen([sys.executable, "-c", sleeper, "agent.pyz", "--run-dir", str(theirs)])
    mine = subprocess.Popen([sys.executable, "-c", sleeper, "agent.pyz", "--run-dir", str(ours)])
    try:
        rows = [{"status": "healthy", "pid": {"agent": other.pid}}, {"status": "healthy", "pid": {"agent": mine.pid}}]
        assert local_procs.found_in(rows, ours)[1] == [mine.pid]
        assert local_procs.found_in(rows[:1], ours)[1] == []
    finally:
        for proc in (other, mine):
            proc.kill()
            proc.wait()
