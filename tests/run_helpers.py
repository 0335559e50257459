"""Helpers for tests that run the demo on this machine: a private AREAL_HOME, demo variants, records, pids, states.

Used by test_runs.py and test_run_states.py."""
from __future__ import annotations

import json
import os
import time

import pytest

from helpers import ROOT, areal

DEMO = ROOT / "examples" / "demo-cpu.yaml"


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private AREAL_HOME; every run still going when the test ends (pass or fail) is force-stopped."""
    monkeypatch.setenv("AREAL_HOME", str(tmp_path / "home"))
    yield tmp_path / "home"
    for path in (tmp_path / "home" / "runs").glob("*/*.json"):
        areal("stop", "--force", f"{path.parent.name}/{path.stem}", timeout=60)


def variant(tmp_path, trial: str, steps: int = 5, extra: str = "", port: int = 31000):
    text = DEMO.read_text().replace("trial_name: trial0", f"trial_name: {trial}") \
        .replace("--steps 5", f"--steps {steps}").replace("python3 demo/", f"python3 {ROOT}/examples/demo/") \
        .replace("--batch-size 4", f"--batch-size 4{extra}").replace("base_port: 31000", f"base_port: {port}")
    path = tmp_path / f"{trial}.yaml"
    path.write_text(text)
    return path


def record(home, trial):
    return json.loads((home / "runs" / "demo-cpu" / f"{trial}.json").read_text())


def run_pids(home, trial) -> list[int]:
    rec = record(home, trial)
    pids = [rec["job"].get("runner_pid"), *rec["job"].get("agents", {}).values()]
    state = home / "runs" / "demo-cpu" / trial / "run" / "state"
    for path in state.glob("*.json"):
        pids += [p for p in json.loads(path.read_text())["pid"].values() if p]
    return [p for p in pids if p]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def statuses(trial):
    envelope = json.loads(areal("status", "-o", "json", f"demo-cpu/{trial}").stdout)
    if "data" not in envelope:  # not registered yet
        return {}
    data = envelope["data"]
    return {f"{w['role']}/{w['index']}": w["status"] for w in data["workers"]}


def processes_of(home) -> list[int]:
    """Every live process started for runs under this AREAL_HOME (runners, agents, workers, forked children: they
    all inherit it), found by its environment."""
    needle, found = f"AREAL_HOME={home}".encode() + b"\0", []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/environ", "rb") as fh:
                    if needle in fh.read() + b"\0" and alive(int(entry)):
                        found.append(int(entry))
            except OSError:
                continue
    return found
