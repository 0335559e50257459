"""Secrets: the agent reads each `secret_files` entry at start and hands the value to the worker's environment
only; a missing file is a clear set-up error (exit 2) that names the variable and path, never a value."""
from __future__ import annotations

import json

from agent_helpers import make_plan, read_state, script, start_agent, worker

DUMP = "import json, os, sys; json.dump(os.environ.get('HF_TOKEN'), open(sys.argv[1], 'w'))"


def test_worker_gets_the_secret_and_nothing_records_it(tmp_path):
    secret = tmp_path / "hf_token"
    secret.write_text("s3cr3t-value\n")
    out = tmp_path / "seen.json"
    plan = make_plan(tmp_path / "plan.json", [worker("w", 0, script(DUMP) + [str(out)])],
                     secrets={"HF_TOKEN": str(secret)})
    proc = start_agent(plan, "w/0", tmp_path / "run", log=tmp_path / "run" / "w.log")
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert json.loads(out.read_text()) == "s3cr3t-value"  # trailing newline of the file dropped
    assert read_state(tmp_path / "run", "w", 0)["status"] == "completed"
    written = "".join(p.read_text(errors="replace") for p in (tmp_path / "run").rglob("*") if p.is_file())
    assert "s3cr3t-value" not in written + stdout + stderr


def test_missing_secret_file_is_a_setup_error_without_a_value(tmp_path):
    plan = make_plan(tmp_path / "plan.json", [worker("w", 0, script("pass"))],
                     secrets={"HF_TOKEN": str(tmp_path / "nope")})
    proc = start_agent(plan, "w/0", tmp_path / "run")
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert f"cannot read secret HF_TOKEN from {tmp_path / 'nope'}" in stderr


def test_forked_child_drops_the_role_scoped_variables_of_its_parent(tmp_path):
    out = tmp_path / "fork.json"
    dump = script("import json, os, sys; json.dump({k: os.environ.get(k) for k in ('RANK', 'KEEP', 'OWN')}, "
                  "open(sys.argv[1], 'w'))") + [str(out)]
    fork = {"role": "proxy", "index": 0, "argv": dump, "env": {"OWN": "1"}}
    parent = worker("actor", 0, script("import time, os, sys; [time.sleep(0.05) for _ in range(200) "
                                       "if not os.path.exists(sys.argv[1])]") + [str(out)],
                    env={"KEEP": "yes"}, forks=[fork], ports=2)
    plan = make_plan(tmp_path / "plan.json", [parent])
    data = json.loads(plan.read_text())
    data["roles"]["actor"]["kind"] = "training"  # a training parent has RANK; its proxy child must not inherit it
    plan.write_text(json.dumps(data))
    proc = start_agent(plan, "actor/0", tmp_path / "run")
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert json.loads(out.read_text()) == {"RANK": None, "KEEP": "yes", "OWN": "1"}
