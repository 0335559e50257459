"""The Ray target on a REAL Ray head node (8 logical H100 GPUs): submitted over REST with `areal submit`, followed
with status/logs/stop. Every test needs tests/ray/cluster.sh up (see conftest.py)."""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import ROOT, areal
from areal_compiler.runs.ray import Backend
from areal_compiler.runs.registry import load

REPORT = ROOT / "tests" / "slurm" / "programs" / "report.py"
DRIVER = Path(__file__).resolve().parent / "programs" / "driver.py"
WORKERS = 2 + 4 + 4  # rollout 2 x 2 GPUs, actor 4 x 1 GPU, ref forked beside every actor worker


def _trial(tmp_path: Path) -> str:
    """A trial name of its own per test (so runs never collide), valid as a trial name."""
    return "t" + hashlib.sha256(str(tmp_path).encode()).hexdigest()[:8]


# Planned ports stay below the kernel's ephemeral range (32768+), where Ray's own processes take ports.
BASE_PORT = 20000


def _experiment(tmp_path: Path, driver_args: str, worker_args: str = "--sleep 300", gpus: int = 8,
                rollout: str = "sglang:d2t2", actor: str = "fsdp:d4") -> Path:
    """rollout (2 x 2 GPUs) and actor (4 x 1 GPU) on one 8-GPU node, ref forked beside every actor worker, and a
    driver that waits for every worker's report and then exits as told. Workers are servers: they never exit."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    worker = f"python3 {shlex.quote(str(REPORT))} {worker_args}"
    spec = f"{{cpu: 1, mem: 1, env_vars: {{REPORT_OUT: {json.dumps(str(out))}}}}}"
    text = f"""\
experiment_name: ray-it
trial_name: {_trial(tmp_path)}
compute: {{accelerator: GPU_8xH100, num_accelerators: {gpus}}}
fileroot: {json.dumps(str(tmp_path / "root"))}
roles:
  rollout: {{backend: "{rollout}", cmd: {json.dumps(worker)}, scheduling_spec: {spec}}}
  actor: {{backend: "{actor}", cmd: {json.dumps(worker)}, scheduling_spec: {spec}}}
  ref:
    backend: "{actor}"
    cmd: {json.dumps(worker)}
    scheduling_strategy: {{type: colocation, target: actor}}
    scheduling_spec: {spec}
driver:
  cmd: {json.dumps(f"python3 {shlex.quote(str(DRIVER))} --expect {WORKERS} {driver_args}")}
  scheduling_spec: {spec}
runtime: {{grace_period: 2, base_port: {BASE_PORT + int(_trial(tmp_path)[1:], 16) % 200 * 40}}}
"""
    path = tmp_path / "exp.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _env(tmp_path: Path) -> dict:
    return dict(os.environ, AREAL_HOME=str(tmp_path / "home"))


def _submit(ray_cluster, tmp_path: Path, source: Path, *extra: str) -> subprocess.CompletedProcess:
    return areal("submit", str(source), "--target", "ray", "--address", ray_cluster.address, "--output", "json",
                 *extra, env=_env(tmp_path), timeout=120)


def _run(said: subprocess.CompletedProcess) -> str:
    return json.loads(said.stdout)["data"]["run"]


def _wait(tmp_path: Path, name: str, timeout: float = 120):
    """The run's record and Ray state once terminal (the backend records the outcome when it sees it)."""
    os.environ["AREAL_HOME"] = str(tmp_path / "home")
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = load(name)
            state = Backend().state(record)
            if state.terminal:
                return load(name), state
            time.sleep(0.5)
        raise TimeoutError(f"{name} not terminal after {timeout} s: {Backend().details(load(name))}")
    finally:
        del os.environ["AREAL_HOME"]


def _job_log(ray_cluster, record) -> str:
    return ray_cluster.get(f"/api/jobs/{record.job['submission_id']}/logs")["logs"]


def _reports(tmp_path: Path) -> dict:
    return {p.stem: json.loads(p.read_text()) for p in (tmp_path / "out").glob("*.json")}


def _plan(record) -> dict:
    return json.loads((Path(record.target_dir) / "plan.json").read_text())


def test_gpu_job_succeeds_with_every_worker_on_its_planned_devices(ray_cluster, tmp_path):
    said = _submit(ray_cluster, tmp_path, _experiment(tmp_path, "--exit-code 0"))
    assert said.returncode == 0, said.stderr.decode()
    record, state = _wait(tmp_path, _run(said))
    log = _job_log(ray_cluster, record)
    assert (state.value, record.exit_code) == ("succeeded", 0), log
    plan, reports = _plan(record), _reports(tmp_path)
    assert len(reports) == WORKERS, sorted(reports)
    for w in plan["workers"]:
        if w["role"] == "driver":
            continue
        rec = reports[f"{w['role']}.{w['index']}"]
        # the node actor holds all 8 logical GPUs of the only node, so Ray's ids are the planned indices
        assert rec["cvd"] == ",".join(str(d) for d in w["devices"]), (w, rec)
        assert rec["host"] == "127.0.0.1"
        if w["role"] == "actor":
            assert reports[f"ref.{w['index']}"]["cvd"] == rec["cvd"]  # the forked ref shares its actor's devices
    states = {f"{r['role']}/{r['index']}": r for r in Backend().workers(record)}
    assert states["driver/0"]["status"] == "completed" and states["driver/0"]["exit_code"] == 0
    assert {states[n]["status"] for n in states if n != "driver/0"} == {"stopped"}  # servers stopped by the launcher
    assert "job succeeded (the driver exited with code 0)" in log
    assert record.run_dir.endswith(record.job["submission_id"])
    worker_log = areal("logs", record.name, "rollout/1", env=_env(tmp_path))
    assert worker_log.returncode == 0 and b"report: rollout/1 on node None devices 2,3" in worker_log.stdout, worker_log


def test_failing_driver_fails_the_job_with_its_exit_code(ray_cluster, tmp_path):
    said = _submit(ray_cluster, tmp_path, _experiment(tmp_path, "--exit-code 7"))
    assert said.returncode == 0, said.stderr.decode()
    record, state = _wait(tmp_path, _run(said))
    info = ray_cluster.get(f"/api/jobs/{record.job['submission_id']}")
    assert (state.value, record.exit_code, info["status"], info["driver_exit_code"]) == ("failed", 7, "FAILED", 7), \
        _job_log(ray_cluster, record)
    status = areal("status", _run(said), env=_env(tmp_path))
    assert status.returncode == 1 and b"failed" in status.stdout and b"exit code 7" in status.stdout, status


def test_stop_stops_a_running_job_and_its_agents(ray_cluster, tmp_path):
    said = _submit(ray_cluster, tmp_path, _experiment(tmp_path, "--sleep 300"))
    assert said.returncode == 0, said.stderr.decode()
    name = _run(said)
    deadline = time.monotonic() + 90
    while len(_reports(tmp_path)) < WORKERS and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(_reports(tmp_path)) == WORKERS
    stopped = areal("stop", name, env=_env(tmp_path))
    assert stopped.returncode == 0 and b"stop requested" in stopped.stdout, stopped
    record, state = _wait(tmp_path, name, timeout=60)
    assert state.value == "stopped", _job_log(ray_cluster, record)
    rows = Backend().workers(record)
    assert len(rows) == WORKERS + 1 and {r["status"] for r in rows} == {"stopped"}, rows
    pids = [p for r in rows for p in (r.get("pid") or {}).values() if p]
    assert pids and not [p for p in pids if Path(f"/proc/{p}").exists()], "agents or workers outlived the job"
    logs = areal("logs", name, env=_env(tmp_path))
    assert b"stopping the agents (signal 15)" in logs.stdout, logs.stdout[-2000:]


def test_oversized_job_is_refused_before_submission(ray_cluster, tmp_path):
    exp = _experiment(tmp_path, "--exit-code 0", gpus=16, rollout="sglang:d2t4", actor="fsdp:d8")  # 2 nodes
    before = {j["submission_id"] for j in ray_cluster.get("/api/jobs/")}
    for extra in (("--dry-run",), ()):
        said = _submit(ray_cluster, tmp_path, exp, *extra)
        assert said.returncode not in (0, 70), said
        text = json.dumps(json.loads(said.stdout)["error"])
        assert "exceeds_cluster" in text and "2 bundle(s) on 2 different nodes" in text and "GPU 8" in text, text
    assert {j["submission_id"] for j in ray_cluster.get("/api/jobs/")} == before


def test_demo_with_its_driver_and_servers_succeeds(ray_cluster, tmp_path):
    said = _submit(ray_cluster, tmp_path, ROOT / "examples" / "demo-cpu.yaml")
    assert said.returncode == 0, said.stderr.decode()
    record, state = _wait(tmp_path, "demo-cpu/trial0")
    assert (state.value, record.exit_code) == ("succeeded", 0), _job_log(ray_cluster, record)
    rows = {f"{r['role']}/{r['index']}": r["status"] for r in Backend().workers(record)}
    assert rows == {"driver/0": "completed", "actor/0": "stopped", "rollout/0": "stopped", "rollout/1": "stopped",
                    "proxy/0": "stopped", "proxy/1": "stopped"}


def test_submit_never_imports_ray_even_where_it_could(ray_cluster, tmp_path):
    """The CLI runs with Ray's site-packages on sys.path (so `import ray` would work) and still never loads it."""
    site = subprocess.run([ray_cluster.python, "-c", "import ray, os; print(os.path.dirname(os.path.dirname("
                           "ray.__file__)))"], capture_output=True, text=True, check=True).stdout.strip()
    code = (f"import importlib.util, sys\nsys.path.append({site!r})\n"
            "assert importlib.util.find_spec('ray') is not None\n"
            "from areal_compiler.cli import main\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
            "print('RAY_IMPORTED=%s' % ('ray' in sys.modules))\nsys.exit(code)\n")
    exp = _experiment(tmp_path, "--exit-code 0")
    proc = subprocess.run([sys.executable, "-c", code, "submit", str(exp), "--target", "ray", "--address",
                           ray_cluster.address], capture_output=True, text=True, env=_env(tmp_path), timeout=120)
    assert proc.returncode == 0 and "RAY_IMPORTED=False" in proc.stdout, (proc.stdout, proc.stderr)
    record, state = _wait(tmp_path, "ray-it/" + _trial(tmp_path))
    assert state.value == "succeeded", _job_log(ray_cluster, record)


def test_a_job_waiting_for_a_busy_cluster_can_be_stopped(ray_cluster, tmp_path):
    """Two 8-GPU jobs on one 8-GPU node: the second waits for its placement group (RUNNING, nothing started) and
    `areal stop` still stops it at once (a job left PENDING by Ray itself could not be stopped)."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    names = []
    for folder in (first, second):
        said = _submit(ray_cluster, tmp_path, _experiment(folder, "--sleep 300"))
        assert said.returncode == 0, said.stderr.decode()
        names.append(_run(said))
    deadline = time.monotonic() + 90
    while max(len(_reports(first)), len(_reports(second))) < WORKERS and time.monotonic() < deadline:
        time.sleep(0.5)
    # Ray does not promise first come, first served between placement groups: whichever got the node runs
    running = 0 if len(_reports(first)) == WORKERS else 1
    folders = (first, second)
    first, second = folders[running], folders[1 - running]
    names = [names[running], names[1 - running]]
    assert len(_reports(first)) == WORKERS and not _reports(second)
    os.environ["AREAL_HOME"] = str(tmp_path / "home")
    try:
        waiting = load(names[1])
        deadline = time.monotonic() + 60  # its runtime env is set up first
        while "waiting for the placement group" not in _job_log(ray_cluster, waiting):
            assert time.monotonic() < deadline, _job_log(ray_cluster, waiting)
            time.sleep(0.5)
        assert Backend().state(waiting).value == "running"
    finally:
        del os.environ["AREAL_HOME"]
    started = time.monotonic()
    for name in reversed(names):
        stopped = areal("stop", name, env=_env(tmp_path))
        assert stopped.returncode == 0, stopped
    record, state = _wait(tmp_path, names[1], timeout=30)
    assert state.value == "stopped" and time.monotonic() - started < 30
    assert not _reports(second), "the waiting job started workers"
    assert _wait(tmp_path, names[0], timeout=60)[1].value == "stopped"
