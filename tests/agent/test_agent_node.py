"""`agent.pyz node`: the agents of one logical node (a Kubernetes pod) start together, their output is prefixed
by worker, the first failure stops the rest and decides the exit code, SIGTERM stops everything."""
from __future__ import annotations

import json
import signal
import subprocess
import time

from agent_helpers import PY, agent_env, make_plan, worker
from areal_compiler.bundle import agent_bundle


def _node(tmp_path, workers, may_fail=(), nodes="0", index="0"):
    plan = make_plan(tmp_path / "plan.json", workers)
    data = json.loads(plan.read_text())
    data["completion"] = {"driver": False, "may_fail": list(may_fail)}
    plan.write_text(json.dumps(data))
    pyz = tmp_path / "agent.pyz"
    pyz.write_bytes(agent_bundle())
    argv = [PY, "-I", str(pyz), "node", "--plan", str(plan), "--nodes", nodes, "--index-env", "POD_INDEX",
            "--run-dir", str(tmp_path / "run")]
    return subprocess.Popen(argv, env=agent_env(POD_INDEX=index), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _py(code):
    return [PY, "-c", code]


def test_every_worker_runs_and_output_is_prefixed(tmp_path):
    proc = _node(tmp_path, [worker("a", 0, _py("print('hello a')")), worker("b", 0, _py("print('hello b')"))])
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "a/0 | hello a" in out.splitlines() and "b/0 | hello b" in out.splitlines()
    states = sorted(p.name for p in (tmp_path / "run" / "state").iterdir())
    assert states == ["a.0.json", "b.0.json"]


def test_first_failure_stops_the_node_with_its_code(tmp_path):
    started = time.monotonic()
    proc = _node(tmp_path, [worker("a", 0, _py("import time; time.sleep(60)")),
                            worker("b", 0, _py("import sys, time; time.sleep(0.5); sys.exit(3)"))])
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3 and "b/0 failed first, with code 3" in err
    assert time.monotonic() - started < 15  # a/0 was stopped, not waited for
    state = json.loads((tmp_path / "run" / "state" / "a.0.json").read_text())
    assert state["status"] == "stopped"


def test_may_fail_roles_do_not_stop_the_node(tmp_path):
    proc = _node(tmp_path, [worker("a", 0, _py("import time; time.sleep(1.5)")),
                            worker("b", 0, _py("import sys; sys.exit(4)"))], may_fail=["b"])
    proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_sigterm_stops_every_agent(tmp_path):
    proc = _node(tmp_path, [worker("a", 0, _py("import time; print('up', flush=True); time.sleep(60)"))])
    assert proc.stdout.readline().strip() == "a/0 | up"
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert json.loads((tmp_path / "run" / "state" / "a.0.json").read_text())["status"] == "stopped"


def test_bad_pod_index_is_a_setup_error(tmp_path):
    proc = _node(tmp_path, [worker("a", 0, _py("pass"))], nodes="0", index="3")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "POD_INDEX must hold a pod index below 1" in err
