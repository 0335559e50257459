"""The supervisor end to end with real processes: exit codes, orderly stop, no orphans, hung/crashed states.

Run by pytest; agents are started as `python -m areal_compiler.agent supervise` subprocesses."""
from __future__ import annotations

import json
import os
import signal
import time

from agent_helpers import (PY, TOKEN, agent_env, agent_url, alive, child_pid, group_members, make_plan,
                           read_state, script, wait_until, worker)
from areal_compiler.agent.client import AgentClient
from areal_compiler.agent.state import read_state as derive_file

IGNORE_TERM = "import signal, time, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); "


def derived(run_dir, role="w", index=0):
    return derive_file(str(run_dir / "state" / ("%s.%d.json" % (role, index))))


def test_worker_exit_code_is_the_agents(tmp_path, agents):
    plan = make_plan(tmp_path / "plan.json", [worker("w", 0, script("import sys; sys.exit(3)"))])
    proc = agents(plan, "w/0", tmp_path / "run")
    assert proc.wait(20) == 3
    state = read_state(tmp_path / "run", "w", 0)
    assert (state["status"], state["exit_code"]) == ("failed", 3)
    assert state["pid"]["agent"] == proc.pid and state["pid"]["child"] > 0
    assert derived(tmp_path / "run")["status"] == "failed"


def test_user_text_is_literal_and_the_contract_is_derived(tmp_path, agents):
    body = ("import os, sys, json; print(json.dumps(dict({k: os.environ.get(k) for k in "
            "['MY_PORT', 'AREAL_PORTS', 'AREAL_HOST', 'AREAL_AGENT_URL', 'AREAL_HEARTBEAT_FILE']}, argv=sys.argv[1:])))")
    plan = make_plan(tmp_path / "plan.json",
                     [worker("w", 0, script(body) + ["{port1}"], env={"MY_PORT": "{port0}"}, ports=2)],
                     runtime={"worker_heartbeat": True})
    log = tmp_path / "w.log"
    proc = agents(plan, "w/0", tmp_path / "run", log=log)
    assert proc.wait(20) == 0
    seen = json.loads(log.read_text(encoding="utf-8").strip().splitlines()[-1])
    planned = json.loads(plan.read_text())["workers"][0]
    assert seen["MY_PORT"] == "{port0}" and seen["AREAL_HOST"] == "127.0.0.1"  # what the user wrote, byte for byte
    assert seen["argv"] == ["{port1}", "--port", str(planned["ports"][0])]
    assert seen["AREAL_PORTS"] == ",".join(str(p) for p in planned["ports"])
    assert seen["AREAL_AGENT_URL"] == agent_url(plan, "w", 0)
    assert seen["AREAL_HEARTBEAT_FILE"] == str(tmp_path / "run" / "heartbeats" / "w.0")
    assert read_state(tmp_path / "run", "w", 0)["status"] == "completed"


def test_old_plan_and_missing_token_exit_2(tmp_path, agents):
    plan = make_plan(tmp_path / "plan.json", [worker("w", 0, script("pass"))])
    data = json.loads(plan.read_text())
    data["plan_version"] = 1
    plan.write_text(json.dumps(data))
    proc = agents(plan, "w/0", tmp_path / "run")
    assert proc.wait(20) == 2
    assert "recompile" in proc.stderr.read()
    plan = make_plan(tmp_path / "plan2.json", [worker("w", 0, script("pass"))])
    env = agent_env()
    del env["AREAL_AGENT_TOKEN"]
    proc = agents(plan, "w/0", tmp_path / "run2", env=env)
    assert proc.wait(20) == 2
    assert "no agent token" in proc.stderr.read()
    state = json.loads((tmp_path / "run2" / "state" / "w.0.json").read_text())  # nothing started; the cause recorded
    assert (state["status"], state["exit_code"], state["pid"]["child"]) == ("failed", 2, None)
    assert state["error"].startswith("no agent token") and not (tmp_path / "run2" / "logs").exists()


def test_sigterm_stops_a_worker_that_ignores_it(tmp_path, agents):
    ready = tmp_path / "ready"
    body = (IGNORE_TERM + "import subprocess; subprocess.Popen([sys.executable, '-c', %r]); "
            "open(%r, 'w').close(); time.sleep(60)" % (IGNORE_TERM + "time.sleep(60)", str(ready)))
    plan = make_plan(tmp_path / "plan.json", [worker("w", 0, script(body))])
    proc = agents(plan, "w/0", tmp_path / "run")
    wait_until(ready.exists, what="worker ready")
    pgid = child_pid(tmp_path / "run", "w", 0)
    assert len(group_members(pgid)) == 2  # the worker and its own child, both ignoring SIGTERM
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 128 + signal.SIGKILL
    assert group_members(pgid) == []
    state = read_state(tmp_path / "run", "w", 0)
    assert (state["status"], state["exit_code"]) == ("stopped", 137)


def test_sigkill_to_agent_leaves_no_orphans_and_reads_crashed(tmp_path, agents):
    fork = {"role": "ref", "index": 0, "argv": script("import time; time.sleep(60)"), "env": {}, "port_count": 0}
    plan = make_plan(tmp_path / "plan.json", [worker("w", 0, script("import time; time.sleep(60)"), forks=[fork])])
    run = tmp_path / "run"
    proc = agents(plan, "w/0", run)
    worker_pid = wait_until(lambda: child_pid(run, "w", 0), what="worker pid")
    fork_pid = wait_until(lambda: child_pid(run, "ref", 0), what="fork pid")
    assert alive(worker_pid) and alive(fork_pid)
    assert derived(run)["status"] == "healthy"
    proc.kill()
    proc.wait(10)
    wait_until(lambda: not alive(worker_pid) and not alive(fork_pid), timeout=5, what="children to die")
    assert derived(run)["status"] == "crashed"
    assert derived(run, "ref", 0)["status"] == "crashed"


def test_frozen_agent_reads_hung(tmp_path, agents):
    plan = make_plan(tmp_path / "plan.json", [worker("w", 0, script("import time; time.sleep(60)"))])
    run = tmp_path / "run"
    proc = agents(plan, "w/0", run)
    wait_until(lambda: child_pid(run, "w", 0), what="worker pid")
    assert derived(run)["status"] == "healthy"
    proc.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: derived(run)["status"] == "hung", timeout=5, what="hung")
    finally:
        proc.send_signal(signal.SIGCONT)
    wait_until(lambda: derived(run)["status"] == "healthy", timeout=5, what="healthy again")


def test_worker_that_stops_beating_reads_hung(tmp_path, agents):
    body = ("import os, time\nfor _ in range(10):\n"
            "    open(os.environ['AREAL_HEARTBEAT_FILE'], 'a').close(); os.utime(os.environ['AREAL_HEARTBEAT_FILE'])\n"
            "    time.sleep(0.1)\ntime.sleep(60)")
    plan = make_plan(tmp_path / "plan.json", [worker("w", 0, script(body))], runtime={"worker_heartbeat": True})
    run = tmp_path / "run"
    agents(plan, "w/0", run)
    wait_until(lambda: (read_state(run, "w", 0) or {}).get("worker_heartbeat", {}).get("last_epoch"),
               what="a worker beat in the state")
    assert derived(run)["status"] == "healthy"
    result = wait_until(lambda: derived(run)["status"] == "hung" and derived(run), timeout=6, what="hung")
    assert "worker's own heartbeat" in result["message"]
    state = read_state(run, "w", 0)
    assert time.time() - state["last_heartbeat_epoch"] < 1.0  # the agent itself still beats


def test_posted_heartbeat_keeps_worker_healthy(tmp_path, agents):
    plan = make_plan(tmp_path / "plan.json", [worker("w", 0, script("import time; time.sleep(60)"))],
                     runtime={"worker_heartbeat": True})
    run = tmp_path / "run"
    agents(plan, "w/0", run)
    client = AgentClient(agent_url(plan, "w", 0), TOKEN)
    wait_until(lambda: derived(run)["status"] == "hung", timeout=6, what="hung without beats")
    client.heartbeat()
    wait_until(lambda: derived(run)["status"] == "healthy", timeout=3, what="healthy after a posted beat")
    client.close()


def test_killed_worker_under_live_agent_is_crashed_137(tmp_path, agents):
    plan = make_plan(tmp_path / "plan.json", [worker("w", 0, script("import time; time.sleep(60)"))])
    run = tmp_path / "run"
    proc = agents(plan, "w/0", run)
    pid = wait_until(lambda: child_pid(run, "w", 0), what="worker pid")
    os.kill(pid, signal.SIGKILL)
    assert proc.wait(20) == 137
    state = read_state(run, "w", 0)
    assert (state["status"], state["exit_code"], state["signal"]) == ("failed", 137, 9)
    assert derived(run)["status"] == "crashed"  # died from a signal nobody sent on purpose


def test_forked_children_stop_with_the_worker(tmp_path, agents):
    fork = {"role": "ref", "index": 0, "argv": script(IGNORE_TERM + "time.sleep(60)"), "env": {},
            "port_count": 1}
    plan = make_plan(tmp_path / "plan.json", [worker("w", 0, script("import time; time.sleep(0.8)"), forks=[fork])])
    run = tmp_path / "run"
    proc = agents(plan, "w/0", run)
    fork_pid = wait_until(lambda: child_pid(run, "ref", 0), what="fork pid")
    assert proc.wait(20) == 0
    assert not alive(fork_pid)
    assert read_state(run, "ref", 0)["status"] == "stopped"
    assert (run / "logs" / "ref" / "0.log").exists()


def test_descendant_that_left_the_group_is_killed_and_reaped(tmp_path, agents):
    pid_file = tmp_path / "grandchild.pid"
    body = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], "
            "start_new_session=True); open(%r, 'w').write(str(p.pid)); time.sleep(0.5)" % str(pid_file))
    plan = make_plan(tmp_path / "plan.json", [worker("w", 0, script(body))])
    proc = agents(plan, "w/0", tmp_path / "run")
    assert proc.wait(20) == 0
    grandchild = int(pid_file.read_text())
    assert not alive(grandchild)  # re-parented to the agent (subreaper), killed at stop, not a zombie
