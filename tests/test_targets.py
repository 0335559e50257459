"""The target interface: a third target added by registering one module, operated by the unchanged CLI; and the
CLI layer names no target."""
from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from helpers import ROOT, write
from areal_compiler import targets
from areal_compiler.cli import main

EXPERIMENT = """\
experiment_name: toy-exp
trial_name: t0
compute: {accelerator: CPU, num_accelerators: 0}
roles:
  server: {replicas: REPLICAS, cmd: "python3 -m http.server", readiness: none}
"""


@pytest.fixture
def toy(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    monkeypatch.setenv("AREAL_HOME", str(tmp_path / "home"))
    monkeypatch.setitem(targets._MODULES, "toy", "toy_target")
    yield CliRunner()


def _json(result):
    return json.loads(result.stdout)


def test_a_registered_target_compiles_submits_and_stops_through_the_unchanged_cli(toy, tmp_path):
    path = write(tmp_path, EXPERIMENT.replace("REPLICAS", "2"))
    compiled = toy.invoke(main, ["compile", str(path), "--target", "toy", "--out", str(tmp_path / "out")])
    assert compiled.exit_code == 0, compiled.output
    assert json.loads((tmp_path / "out" / "toy" / "toy.json").read_text()) == {
        "run": "toy-exp/t0", "workers": ["server/0", "server/1"]}
    assert (tmp_path / "out" / "toy" / "plan.json").is_file() and (tmp_path / "out" / "toy" / "agent.pyz").is_file()

    submitted = toy.invoke(main, ["submit", str(path), "--target", "toy", "-o", "json"])
    assert submitted.exit_code == 0, submitted.output
    assert _json(submitted)["data"]["toy_job"] == "toy-exp/t0"
    assert toy.invoke(main, ["submit", str(path), "--target", "toy"]).exit_code == 1  # the run is active (pending)
    runs = _json(toy.invoke(main, ["ps", "-o", "json"]))["data"]["runs"]
    assert [(r["run"], r["target"], r["status"]) for r in runs] == [("toy-exp/t0", "toy", "pending")]
    assert toy.invoke(main, ["stop", "toy-exp/t0"]).output.strip() == "toy-exp/t0: stopped"
    status = _json(toy.invoke(main, ["status", "toy-exp/t0", "-o", "json"]))["data"]
    assert (status["target"], status["status"]) == ("toy", "stopped")


def test_a_targets_check_is_a_located_error_in_validate_and_compile_alike(toy, tmp_path):
    path = write(tmp_path, EXPERIMENT.replace("REPLICAS", "5"))
    for verb in ("validate", "compile"):
        result = toy.invoke(main, [verb, str(path), "--target", "toy", "--out", str(tmp_path / "o")]
                            if verb == "compile" else [verb, str(path), "--target", "toy"])
        assert result.exit_code == 1
        assert re.search(r"exp\.yaml:4:1: error\[E490\]: toy: the toy target takes at most 4 workers", result.output)
    assert not (tmp_path / "o").exists()


def test_a_failed_submit_keeps_the_earlier_record(toy, tmp_path):
    path = write(tmp_path, EXPERIMENT.replace("REPLICAS", "1"))
    assert toy.invoke(main, ["submit", str(path), "--target", "toy"]).exit_code == 0
    assert toy.invoke(main, ["stop", "toy-exp/t0"]).exit_code == 0
    refused = toy.invoke(main, ["submit", str(path), "--target", "toy", "--address", "refuse"])
    assert refused.exit_code == 1 and "the toy cluster refuses" in refused.output
    runs = _json(toy.invoke(main, ["ps", "-a", "-o", "json"]))["data"]["runs"]
    assert [(r["run"], r["status"]) for r in runs] == [("toy-exp/t0", "stopped")]  # still there, as it was


def test_the_cli_layer_names_no_target():
    names = set(targets.names()) | {"kubernetes", "ray", "sbatch", "launch.json", "job.json", "jobset"}
    for module in ("cli.py", "cli_runs.py"):
        text = (ROOT / "compiler" / module).read_text().lower()
        found = sorted(n for n in names if re.search(rf"\b{re.escape(n)}\b", text))
        assert found == [], f"compiler/{module} names {found}"
