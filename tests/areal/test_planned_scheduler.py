"""The planned scheduler with upstream AReaL 1.0.4's real RPC servers and its own TrainController.

The test compiles a CPU experiment, starts upstream's `python -m areal.infra.rpc.rpc_server` on every planned port
with exactly the arguments upstream's LocalScheduler passes (as the job's agents would), then runs
programs/planned_driver.py through run_trainer.py: create (attach), configure, set_worker_env, create_engine with
our small TrainEngine, a gloo rendezvous on the planned MASTER_PORT, call_engine, fork (attach to the planned
forks), destroy; and the request mismatches the plan must refuse naming the setting."""
from __future__ import annotations

import json
import os
import sys
import subprocess
from pathlib import Path

import pytest

from helpers import free_port_block

from areal_compiler.agent.contract import worker_argv
from areal_compiler.pipeline import plan_file

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
EXPERIMENT = """\
experiment_name: planned
trial_name: t0
compute: {{accelerator: CPU, num_accelerators: 0}}
fileroot: {fileroot}
areal: {{name_resolve: {{nfs_record_root: {fileroot}/name_resolve}}}}
roles:
  actor:
    replicas: 2
    cmd: {python} -m areal.infra.rpc.rpc_server
    upstream: areal
    scheduling_spec: {{cpu: 1, mem: 1}}
  proxy:
    cmd: {python} -m areal.infra.rpc.rpc_server
    upstream: areal
    scheduling_spec: {{cpu: 1, mem: 1, port_count: 1}}
    scheduling_strategy: {{type: colocation, target: actor}}
runtime: {{base_port: {base_port}}}
"""


def _start(plan, tmp_path: Path, env: dict) -> list[subprocess.Popen]:
    """Every planned process with the argv its agent would give it (`upstream: areal`: upstream's arguments)."""
    procs = []
    plan_dict = json.loads(plan.to_json())
    for worker in plan.workers:
        for role, index, ports in [(worker.role, worker.index, worker.ports)] + \
                [(f.role, f.index, f.ports) for f in worker.forks]:
            argv = worker_argv(plan_dict, role, index, ports)
            log = open(tmp_path / f"{role}.{index}.log", "wb")
            procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env))
    return procs


@pytest.fixture
def planned_job(areal_python, tmp_path):
    exp = tmp_path / "exp.yaml"
    exp.write_text(EXPERIMENT.format(fileroot=tmp_path / "fileroot", base_port=free_port_block(8),
                                     python=areal_python),
                   encoding="utf-8")
    result = plan_file(str(exp))
    assert result.ok, [d.render() for d in result.diagnostics]
    (tmp_path / "plan.json").write_text(result.plan.to_json(), encoding="utf-8")
    (tmp_path / "path").mkdir()
    (tmp_path / "path" / "areal_compiler").symlink_to(REPO / "compiler")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AREAL_", "PYTHON"))}
    env.update(PYTHONPATH=os.pathsep.join([str(HERE / "programs"), str(tmp_path / "path")]),
               AREAL_PLAN_FILE=str(tmp_path / "plan.json"), PYTHONUNBUFFERED="1",
               PLANNED_FILEROOT=str(tmp_path / "fileroot"))
    procs = _start(result.plan, tmp_path, env)
    yield result.plan, env, procs
    for proc in procs:
        proc.kill()
        proc.wait(timeout=30)


def test_upstream_train_controller_runs_on_the_planned_workers(areal_python, planned_job, tmp_path):
    plan, env, procs = planned_job
    driver = subprocess.run([areal_python, "-m", "areal_compiler.upstream.run_trainer",
                             str(HERE / "programs" / "planned_driver.py")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=900, check=False)
    logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in tmp_path.glob("*.log"))
    assert driver.returncode == 0, f"{driver.stderr[-4000:]}\n{logs}"
    seen = json.loads(next(line for line in reversed(driver.stdout.splitlines()) if line.startswith("{")))
    actors = plan.workers_of("actor")
    assert seen["factory"] == "PlannedScheduler"  # run_trainer replaced SFTTrainer._init_scheduler
    assert seen["workers"] == [[f"actor/{w.index}", "127.0.0.1", [str(p) for p in w.ports]] for w in actors]
    master = f"127.0.0.1:{actors[0].ports[1]}"  # upstream's rule: worker 0's second port
    assert [(s["rank"], s["world"], s["sum"], s["master"]) for s in seen["sums"]] == \
        [(0, 2, 3.0, master), (1, 2, 3.0, master)]
    assert seen["sums"][0]["pid"] == procs[0].pid and seen["single"] is True
    forks = [f for w in actors for f in w.forks]
    assert seen["forked"] == ["proxy/0", "proxy/1"]
    assert seen["proxies"] == [[f"proxy/{f.index}", "127.0.0.1", [str(p) for p in f.ports]] for f in forks]
    assert seen["after_delete"] == []
    assert all(p.poll() is None for p in procs), "deleting workers must leave the processes to the job"
    mismatch = seen["mismatches"]
    assert "3 worker(s) of role `actor` but the plan has 2: make roles.actor.backend" in mismatch["replicas"]
    assert "role `critic`, which the compiled experiment does not have" in mismatch["role"]
    assert "1 device(s) per worker of role `actor` but the plan gives 0" in mismatch["devices"]
    assert "set roles.proxy.scheduling_strategy" in mismatch["strategy"]
    assert all(m.startswith("WorkerCreationError") for k, m in mismatch.items() if k != "config"), mismatch
    assert mismatch["config"] == ("PlanMismatch: the training config's trial_name is 'other' but the compiled "
                                  "experiment's areal.trial_name is 't0': make them the same")


AGENT_EXPERIMENT = """\
experiment_name: planned
trial_name: t0
compute: {{accelerator: CPU, num_accelerators: 0}}
fileroot: {fileroot}
areal: {{name_resolve: {{nfs_record_root: {fileroot}/name_resolve}}}}
roles:
  actor:
    replicas: 1
    cmd: python -m areal.infra.rpc.rpc_server
    upstream: areal
    scheduling_spec: {{cpu: 1, mem: 1}}
runtime: {{base_port: {base_port}, fork_commands: any}}
"""


def test_a_role_the_plan_does_not_declare_is_forked_through_our_agent(areal_python, tmp_path):
    """Upstream's fork (alloc_ports, then /fork with its raw_cmd) sent to our real agent, with the run's token."""
    exp = tmp_path / "exp.yaml"
    exp.write_text(AGENT_EXPERIMENT.format(fileroot=tmp_path / "fileroot", base_port=free_port_block(8)),
                   encoding="utf-8")
    result = plan_file(str(exp))
    assert result.ok, [d.render() for d in result.diagnostics]
    plan_json = tmp_path / "plan.json"
    plan_json.write_text(result.plan.to_json(), encoding="utf-8")
    (tmp_path / "token").write_text("the-run-token\n", encoding="utf-8")
    (tmp_path / "wrong").write_text("not-the-token\n", encoding="utf-8")
    (tmp_path / "path").mkdir()
    (tmp_path / "path" / "areal_compiler").symlink_to(REPO / "compiler")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AREAL_", "PYTHON"))}
    env.update(PATH=os.pathsep.join([str(Path(areal_python).parent), env.get("PATH", "")]), PYTHONUNBUFFERED="1",
               AREAL_AGENT_TOKEN_FILE=str(tmp_path / "token"), AREAL_PLAN_FILE=str(plan_json))
    agent = subprocess.Popen([sys.executable, "-m", "areal_compiler.agent", "supervise", "--plan", str(plan_json),
                              "--worker", "actor/0", "--run-dir", str(tmp_path / "run"), "--log",
                              str(tmp_path / "actor.log")], env=env, stdout=subprocess.DEVNULL,
                             stderr=open(tmp_path / "agent.log", "wb"))
    try:
        driver = subprocess.run([areal_python, str(HERE / "programs" / "agent_fork_driver.py")], cwd=tmp_path,
                                env=dict(env, WRONG_TOKEN_FILE=str(tmp_path / "wrong"),
                                         PYTHONPATH=str(tmp_path / "path")),
                                capture_output=True, text=True, timeout=900, check=False)
    finally:
        agent.terminate()
        agent.wait(timeout=60)
    logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in tmp_path.rglob("*.log"))
    assert driver.returncode == 0, f"{driver.stderr[-4000:]}\n{logs}"
    seen = json.loads(next(line for line in reversed(driver.stdout.splitlines()) if line.startswith("{")))
    worker = result.plan.workers[0]
    assert seen["actor"] == ["127.0.0.1", [str(p) for p in worker.ports]]
    assert "answered 401" in seen["refused"] and seen["refused"].startswith("PlanMismatch"), seen["refused"]
    assert seen["forked"] == ["proxy-actor/0"]
    proxy_id, proxy_ip, proxy_ports = seen["proxy"]
    assert (proxy_id, len(proxy_ports)) == ("proxy-actor/0", 2)
    assert not set(map(int, proxy_ports)) & set(worker.ports + [worker.agent_port])
