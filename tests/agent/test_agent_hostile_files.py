"""Hostile files under the real agent: secrets and plans that are devices, FIFOs, huge or hold NUL; state files
symlinked to /dev/zero. Every one is a clean exit 2 (or `corrupt`), never a traceback or a hang."""
from __future__ import annotations

import json
import os

import pytest

from agent_helpers import make_plan, script, start_agent, worker
from areal_compiler.agent.state import read_run


def _setup_error(tmp_path, plan) -> str:
    proc = start_agent(plan, "w/0", tmp_path / "run")
    try:
        _, stderr = proc.communicate(timeout=30)  # a hang (a FIFO, /dev/zero) fails here
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 2, stderr
    assert "Traceback" not in stderr and stderr.startswith("areal-agent: error: "), stderr
    return stderr


def _secret_plan(tmp_path, secret_path) -> str:
    return make_plan(tmp_path / "plan.json", [worker("w", 0, script("pass"))], secrets={"HF_TOKEN": str(secret_path)})


def test_secret_file_that_is_dev_zero(tmp_path):
    stderr = _setup_error(tmp_path, _secret_plan(tmp_path, "/dev/zero"))
    assert "cannot read secret HF_TOKEN from /dev/zero: not a regular file" in stderr


def test_secret_file_that_is_a_fifo(tmp_path):
    fifo = tmp_path / "token"
    os.mkfifo(fifo)
    assert "not a regular file" in _setup_error(tmp_path, _secret_plan(tmp_path, fifo))


def test_secret_file_too_large(tmp_path):
    big = tmp_path / "token"
    big.write_bytes(b"x" * (64 * 1024 + 1))
    assert "larger than 65536 bytes" in _setup_error(tmp_path, _secret_plan(tmp_path, big))


@pytest.mark.parametrize("content, why", [(b"sec\x00ret", "NUL"), (b"\xff\xfe", "not UTF-8")])
def test_secret_value_that_cannot_be_an_env_value(tmp_path, content, why):
    secret = tmp_path / "token"
    secret.write_bytes(content)
    stderr = _setup_error(tmp_path, _secret_plan(tmp_path, secret))
    assert why in stderr and "sec" not in stderr.replace("secret", "")


@pytest.mark.parametrize("where", ["argv", "env value", "env name", "fork argv"])
def test_nul_in_a_planned_command_is_refused(tmp_path, where):
    argv, env, forks = script("pass"), {"A": "1"}, []
    if where == "argv":
        argv = argv + ["a\x00b"]
    elif where == "env value":
        env = {"A": "x\x00y"}
    elif where == "env name":
        env = {"A=B": "1"}
    else:
        forks = [{"role": "p", "index": 0, "argv": ["x\x00"], "env": {}, "ports": []}]
    plan = make_plan(tmp_path / "plan.json", [worker("w", 0, argv, env=env, forks=forks)])
    stderr = _setup_error(tmp_path, plan)
    assert "plan " in stderr and ("NUL" in stderr or "'='" in stderr)


def test_plan_that_is_dev_zero(tmp_path):
    plan = tmp_path / "plan.json"
    plan.symlink_to("/dev/zero")
    assert "not a regular file" in _setup_error(tmp_path, plan)


def test_state_file_symlinked_to_dev_zero_reads_corrupt(tmp_path):
    state = tmp_path / "run" / "state"
    state.mkdir(parents=True)
    (state / "w.0.json").symlink_to("/dev/zero")
    (state / "w.1.json").write_text("{" * 100_000)  # too deep for json: corrupt, not RecursionError
    (state / "w.2.json").write_bytes(b" " * ((1 << 20) + 1))
    rows = read_run(str(tmp_path / "run"))
    assert [(r["index"], r["status"]) for r in rows] == [("0", "corrupt"), ("1", "corrupt"), ("2", "corrupt")]
    assert "not a regular file" in rows[0]["message"] and "larger than" in rows[2]["message"]
    json.dumps(rows)
