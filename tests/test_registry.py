"""The run registry and the operator verbs on hostile state (issue 15): a corrupt record is refused and kept, bad
timeouts are usage errors, a hand-edited compiled folder is refused, status says when a process crashed."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from helpers import ROOT
from areal_compiler.cli import main

DEMO = ROOT / "examples" / "demo-cpu.yaml"


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("AREAL_HOME", str(tmp_path / "home"))
    return CliRunner()


def _record(tmp_path, **fields) -> dict:
    path = tmp_path / "home" / "runs" / "demo-cpu" / "trial0.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"name": "demo-cpu/trial0", "target": "local", "target_dir": str(tmp_path), "run_dir": "",
              "job": {}, **fields}
    path.write_text(json.dumps(record))
    return record


@pytest.mark.parametrize("corrupt", ["{not json", "[]", '{"name": "other/run", "target": "local"}',
                                     '{"name": "demo-cpu/trial0", "target": 7, "target_dir": "", "run_dir": ""}'])
def test_a_corrupt_record_is_refused_and_kept(cli, tmp_path, corrupt):
    path = tmp_path / "home" / "runs" / "demo-cpu" / "trial0.json"
    path.parent.mkdir(parents=True)
    path.write_text(corrupt)
    started = cli.invoke(main, ["start", str(DEMO), "-o", "json"])
    assert started.exit_code == 1
    assert json.loads(started.stdout)["error"]["code"] == "run_record_corrupt"
    assert path.read_text() == corrupt  # never overwritten or deleted
    assert not (tmp_path / "home" / "runs" / "demo-cpu" / "trial0" / "run").exists()  # nothing started
    listed = json.loads(cli.invoke(main, ["ps", "-o", "json"]).stdout)["data"]["runs"]
    assert [(r["run"], r["status"]) for r in listed] == [("demo-cpu/trial0", "corrupt")]  # never hidden
    assert cli.invoke(main, ["stop", "demo-cpu/trial0"]).exit_code == 1


@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "inf"])
def test_start_timeouts_that_cannot_work_are_usage_errors(cli, timeout):
    result = cli.invoke(main, ["start", str(DEMO), "--timeout", timeout])
    assert result.exit_code == 2 and "positive number of seconds" in result.output


def test_a_hand_edited_compiled_folder_is_refused(cli, tmp_path):
    assert cli.invoke(main, ["compile", str(DEMO), "--target", "local", "--out", str(tmp_path / "out")]).exit_code == 0
    plan = tmp_path / "out" / "local" / "plan.json"
    plan.write_text(plan.read_text().replace('"python3"', '"/bin/sh"', 1))
    result = cli.invoke(main, ["run", str(tmp_path / "out")])
    assert result.exit_code == 1 and "was changed after it was compiled" in result.output


def test_status_exits_1_when_a_forked_process_crashed(cli, tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "state").mkdir(parents=True)
    _record(tmp_path, run_dir=str(run_dir), outcome="succeeded", exit_code=0)
    state = {"role": "proxy", "index": 0, "kind": "forked", "status": "failed", "exit_code": 137, "signal": 9,
             "pid": {"agent": 1, "child": 2}}
    (run_dir / "state" / "proxy.0.json").write_text(json.dumps(state))
    result = cli.invoke(main, ["status", "demo-cpu/trial0", "-o", "json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["data"]["workers"][0]["status"] == "crashed"
    (run_dir / "state" / "proxy.0.json").write_text(json.dumps(dict(state, status="stopped", signal=None)))
    assert cli.invoke(main, ["status", "demo-cpu/trial0"]).exit_code == 0
