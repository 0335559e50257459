"""Running on this machine and operating runs, with real processes: run, start, status, stop, ps, logs."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from helpers import ROOT, areal
from run_helpers import DEMO, alive, home, record, run_pids, statuses, variant, wait_for  # noqa: F401 (home: a fixture)

def test_demo_runs_from_any_directory_and_never_exceeds_staleness(home, tmp_path):
    result = areal("run", str(DEMO), cwd=tmp_path, env=os.environ.copy(), timeout=120)  # commands resolve beside it
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert "controller: step 5 trained on 4 rollouts, published version 5" in out
    assert "rollout/1" in out and "proxy/0" in out
    events = [json.loads(line) for line in
              (home / "runs" / "demo-cpu" / "trial0" / "run" / "gate-events.jsonl").read_text().splitlines()]
    submits = [e for e in events if e["event"] == "submitted"]
    assert len(submits) >= 20  # 5 steps x batch 4
    s, bs, mcr = 1, 4, 4
    for e in events:
        assert e["running"] <= mcr
        assert e["accepted"] + e["running"] <= (s + e["version"] + 1) * bs, e
    assert not [p for p in run_pids(home, "trial0") if alive(p)]
    assert record(home, "trial0")["outcome"] == "succeeded"
    said = areal("stop", "demo-cpu/trial0")  # issue 24 item 5: how it ended, not "already stopped"
    assert (said.returncode, said.stdout.decode()) == (0, "demo-cpu/trial0: already ended (succeeded, exit code 0)\n")


def test_the_drivers_exit_code_is_the_jobs_and_nothing_is_left(home, tmp_path):
    path = variant(tmp_path, "fail", extra=" --exit-code 3", port=31100)
    begun = time.monotonic()
    result = areal("run", str(path), "--quiet", timeout=120)
    assert result.returncode == 3, result.stderr.decode()
    assert "the driver exited with code 3" in result.stderr.decode()
    assert time.monotonic() - begun < 30  # servers that never exit are stopped when the driver ends
    assert not [p for p in run_pids(home, "fail") if alive(p)]
    assert (record(home, "fail")["outcome"], record(home, "fail")["exit_code"]) == ("failed", 3)


def test_a_worker_failing_first_fails_the_job_with_its_code_and_stops_the_driver(home, tmp_path):
    path = variant(tmp_path, "wfail", steps=100000, port=31150)
    text = path.read_text().replace("--action generate", "--action generate --no-such-flag")
    path.write_text(text)  # the rollout servers exit 2 (argparse) at once; the driver would retry them for 15 s
    result = areal("run", str(path), "--quiet", timeout=120)
    assert result.returncode == 2, result.stderr.decode()
    assert re.search(r"rollout/\d failed with code 2 while the driver ran", result.stderr.decode())
    assert not [p for p in run_pids(home, "wfail") if alive(p)]
    rows = {f"{w['role']}/{w['index']}": w for w in
            json.loads(areal("status", "-o", "json", "demo-cpu/wfail").stdout)["data"]["workers"]}
    assert rows["driver/0"]["status"] == "stopped" and rows["rollout/0"]["exit_code"] == 2


def test_start_fails_when_a_worker_fails_during_start_up(home, tmp_path):
    path = variant(tmp_path, "badstart", steps=100000, port=31170)
    path.write_text(path.read_text().replace("--action generate", "--action generate --no-such-flag"))
    result = areal("start", str(path), timeout=90)
    assert result.returncode == 1
    err = result.stderr.decode()
    assert "rollout/" in err and "with exit code 2 during start-up" in err and "usage:" in err
    assert not [p for p in run_pids(home, "badstart") if alive(p)]


def test_start_status_crash_stop_ps_logs(home, tmp_path):
    path = variant(tmp_path, "long", steps=100000, port=31200)
    started = areal("start", str(path), timeout=90)
    assert started.returncode == 0, started.stderr.decode()
    assert started.stdout.decode().strip() == "demo-cpu/long"
    assert set(statuses("long").values()) == {"healthy"}
    assert len(statuses("long")) == 6  # 2 rollout + 1 actor + 2 forked proxies + the driver
    assert areal("start", str(path)).returncode == 1  # the same name cannot run twice

    logs = areal("logs", "demo-cpu/long", "rollout/0").stdout.decode()
    assert "rollout/0: serving generate on port 31200" in logs and "proxy" not in logs

    state = home / "runs" / "demo-cpu" / "long" / "run" / "state" / "rollout.1.json"
    killed = time.time()
    os.kill(json.loads(state.read_text())["pid"]["child"], signal.SIGKILL)
    wait_for(lambda: statuses("long").get("rollout/1") == "crashed", 30, "rollout/1 reads crashed")
    from datetime import datetime

    noticed = datetime.fromisoformat(json.loads(state.read_text())["finished_at"]).timestamp()
    assert noticed - killed <= 2 * 1.0 + 1  # the agent noticed within two heartbeats (its own clock, not ours)

    stopped = areal("stop", "demo-cpu/long", timeout=60)
    assert stopped.returncode == 0
    assert not [p for p in run_pids(home, "long") if alive(p)]
    assert re.fullmatch(r"demo-cpu/long: already ended \((failed|stopped), exit code \d+\)",
                        areal("stop", "demo-cpu/long").stdout.decode().strip())
    runs = json.loads(areal("ps", "-a", "-o", "json").stdout)["data"]["runs"]
    assert [(r["run"], r["status"]) for r in runs] in ([("demo-cpu/long", "failed")], [("demo-cpu/long", "stopped")])
    assert json.loads(areal("ps", "-o", "json").stdout)["data"]["runs"] == []


def test_stop_of_a_healthy_run_is_stopped(home, tmp_path):
    path = variant(tmp_path, "calm", steps=100000, port=31300)
    assert areal("start", str(path), timeout=90).returncode == 0
    assert areal("stop", "demo-cpu/calm", timeout=60).returncode == 0
    assert not [p for p in run_pids(home, "calm") if alive(p)]
    runs = json.loads(areal("ps", "-a", "-o", "json").stdout)["data"]["runs"]
    assert [(r["run"], r["status"]) for r in runs] == [("demo-cpu/calm", "stopped")]
    assert set(statuses("calm").values()) == {"stopped"}


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGKILL, None)])
def test_interrupting_areal_run_leaves_no_process(home, tmp_path, sig, code):
    path = variant(tmp_path, f"int{sig}", steps=100000, port=31400 if sig == signal.SIGINT else 31500)
    proc = subprocess.Popen([sys.executable, "-m", "areal_compiler", "run", str(path), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(lambda: len(statuses(f"int{sig}")) == 6 and set(statuses(f"int{sig}").values()) == {"healthy"}, 60,
             "healthy run")
    pids = run_pids(home, f"int{sig}")
    proc.send_signal(sig)
    assert proc.wait(30) == (code if code is not None else -signal.SIGKILL)
    wait_for(lambda: not [p for p in pids if alive(p)], 15, "every process gone")
    if sig == signal.SIGINT:  # issue 24 item 16: the last line says why it stopped, not the driver's last state
        last = proc.stderr.read().decode().splitlines()[-1]
        assert last == f"areal: demo-cpu/int{sig}: stopped by SIGINT, exit code 130", last


def test_run_of_invalid_experiment_exits_1(home, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEMO.read_text().replace("replicas: 2", "replicas: two"))
    result = areal("run", str(bad))
    assert result.returncode == 1 and "E203" in result.stderr.decode()
    assert not (home / "runs").exists()


def test_json_error_envelope_for_unknown_run(home):
    result = areal("status", "-o", "json", "nope/none")
    assert result.returncode == 1
    error = json.loads(result.stdout)["error"]
    assert (error["code"], error["kind"], error["retryable"]) == ("run_not_found", "not_found", False)


def test_a_run_whose_runner_died_reads_crashed_not_running(home, tmp_path):
    path = variant(tmp_path, "orphan", steps=100000, port=31600)
    assert areal("start", str(path), timeout=90).returncode == 0
    pids = run_pids(home, "orphan")
    os.kill(record(home, "orphan")["job"]["runner_pid"], signal.SIGKILL)
    wait_for(lambda: not [p for p in pids if alive(p)], 20, "agents and workers gone with their runner")
    runs = json.loads(areal("ps", "-a", "-o", "json").stdout)["data"]["runs"]
    assert [(r["run"], r["status"]) for r in runs] == [("demo-cpu/orphan", "crashed")]
    assert areal("start", str(path), timeout=90).returncode == 0  # a crashed run does not block its name


def test_agent_setup_errors_are_shown(home, tmp_path):
    path = variant(tmp_path, "nosecret", port=31700)
    path.write_text(path.read_text() + "secrets:\n  HF_TOKEN: {file: /nonexistent/hf_token}\n")
    result = areal("run", str(path), "--quiet", timeout=60)
    assert result.returncode == 2
    assert "agent: areal-agent: error: cannot read secret HF_TOKEN from /nonexistent/hf_token" in result.stderr.decode()


def test_start_from_a_compiled_folder_on_a_fresh_home(home, tmp_path):
    path = variant(tmp_path, "fromdir", steps=100000, port=31800)
    assert areal("compile", str(path), "--out", str(tmp_path / "out"), "--target", "local").returncode == 0
    started = areal("start", str(tmp_path / "out"), timeout=90)
    assert started.returncode == 0, started.stderr.decode()
    assert areal("stop", "demo-cpu/fromdir", timeout=60).returncode == 0


@pytest.mark.parametrize("launch", ["{}", "[]", "not json"])
def test_unusable_compiled_folder_is_a_clear_error(home, tmp_path, launch):
    folder = tmp_path / "local"
    folder.mkdir()
    for name in ("plan.json", "agent.pyz"):
        (folder / name).write_text("{}")
    (folder / "launch.json").write_text(launch)
    result = areal("run", str(folder))
    assert result.returncode == 1 and b"Traceback" not in result.stderr
    assert b"not a compiled target folder (no usable manifest.json)" in result.stderr
    assert json.loads(areal("ps", "-a", "-o", "json").stdout)["data"]["runs"] == []


def test_failed_submit_leaves_no_record(home, tmp_path):
    """sbatch refusing the job must not leave a record that breaks ps, status or the next submit."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sbatch").write_text("#!/bin/sh\necho 'sbatch: error: Invalid partition name specified' >&2\nexit 1\n")
    (bindir / "sinfo").write_text("#!/bin/sh\necho node1\n")
    for name in ("sbatch", "sinfo"):
        (bindir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    path = variant(tmp_path, "nosubmit", port=31900)
    path.write_text(path.read_text().replace("/tmp/areal/experiments", str(tmp_path / "root")))
    for _ in range(2):  # the second attempt meets the same Slurm error, not "already running"
        result = areal("submit", str(path), "--target", "slurm", env=env)
        assert result.returncode == 1 and b"Invalid partition name specified" in result.stderr, result.stderr
    listed = areal("ps", "-a", "-o", "json", env=env)
    assert listed.returncode == 0 and json.loads(listed.stdout)["data"]["runs"] == []
