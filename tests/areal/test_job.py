"""A whole compiled job on upstream AReaL 1.0.4: `areal run` of a CPU experiment whose roles are upstream's real RPC
servers (`upstream: areal`: each gets exactly the arguments upstream's LocalScheduler passes) and whose driver is
programs/job_driver.py, a controller on upstream's own classes (TrainController, SFTTrainer's scheduler factory,
load_expr_config) run unchanged under the planned scheduler that agent.pyz carries.

The job must end with the driver's exit 0 and leave no process; the driver's report shows upstream's controller
attached to the planned workers (hosts and ports), a gloo all_reduce across the actor ranks on the planned master
port, the planned proxy forks, and every RPC server registered in upstream's name_resolve under the names of the
`areal` block (not the experiment's own names)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from helpers import areal, free_port_block
from areal_compiler.pipeline import plan_file

HERE = Path(__file__).resolve().parent
PROGRAMS = HERE / "programs"
EXPERIMENT = """\
experiment_name: areal-job
trial_name: t0
compute: {{accelerator: CPU, num_accelerators: 0}}
fileroot: {root}/fileroot
areal:
  experiment_name: job_upstream
  trial_name: trial_0
  name_resolve: {{type: nfs, nfs_record_root: {root}/name_resolve}}
roles:
  actor:
    replicas: 2
    cmd: {python} -m areal.infra.rpc.rpc_server
    upstream: areal
    scheduling_spec: {{cpu: 1, mem: 1, env_vars: {{PYTHONPATH: {programs}}}}}
  proxy:
    cmd: {python} -m areal.infra.rpc.rpc_server
    upstream: areal
    scheduling_spec: {{cpu: 1, mem: 1, port_count: 1}}
    scheduling_strategy: {{type: colocation, target: actor}}
driver:
  cmd: {python} {programs}/job_driver.py --config job.yaml
  upstream: areal
runtime: {{base_port: {base_port}, grace_period: 20}}
"""
CONFIG = """\
experiment_name: job_upstream
trial_name: trial_0
cluster:
  fileroot: {root}/fileroot
  name_resolve: {{type: nfs, nfs_record_root: {root}/name_resolve}}
scheduler: {{type: local}}
train_dataset: {{path: unused, type: sft}}
stats_logger: &names {{experiment_name: "${{experiment_name}}", trial_name: "${{trial_name}}",
                      fileroot: "${{cluster.fileroot}}"}}
saver: *names
evaluator: *names
recover: *names
"""


def _processes_naming(text: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and int(pid) != os.getpid():
            found.append(f"{pid}: {cmdline[:200]}")
    return found


def test_a_compiled_job_runs_upstream_workers_and_an_unchanged_controller(areal_python, tmp_path):
    root = tmp_path
    exp = tmp_path / "job.areal.yaml"
    exp.write_text(EXPERIMENT.format(root=root, python=areal_python, programs=PROGRAMS,
                                     base_port=free_port_block(16)),
                   encoding="utf-8")
    (tmp_path / "job.yaml").write_text(CONFIG.format(root=root), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AREAL_", "PYTHON"))}
    env["AREAL_HOME"] = str(tmp_path / "home")
    run = areal("run", str(exp), "--quiet", cwd=tmp_path, env=env, timeout=900)
    logs = "\n".join(f"--- {p.relative_to(tmp_path)}\n{p.read_text(errors='replace')[-2000:]}"
                     for p in sorted((tmp_path / "home").rglob("*.log")))
    assert run.returncode == 0, f"{run.stdout.decode()[-2000:]}\n{run.stderr.decode()[-3000:]}\n{logs}"
    assert not _processes_naming(str(root)), "the job left processes behind"

    plan = plan_file(str(exp)).plan
    driver_log = next((tmp_path / "home").rglob("driver/0.log")).read_text(errors="replace")
    seen = json.loads(next(line for line in reversed(driver_log.splitlines()) if line.startswith("{")))
    actors = plan.workers_of("actor")
    assert seen["scheduler"] == "PlannedScheduler"  # SFTTrainer's own factory, patched by run-trainer
    assert seen["workers"] == [[f"actor/{w.index}", "127.0.0.1", [str(p) for p in w.ports]] for w in actors]
    master = f"127.0.0.1:{actors[0].ports[1]}"  # upstream's rule: worker 0's second port
    assert [(s["rank"], s["world"], s["sum"], s["master"]) for s in seen["sums"]] == \
        [(0, 2, 3.0, master), (1, 2, 3.0, master)]
    forks = [f for w in actors for f in w.forks]
    assert seen["forked"] == ["proxy/0", "proxy/1"]
    assert seen["proxies"] == [[f"proxy/{f.index}", "127.0.0.1", [str(p) for p in f.ports]] for f in forks]
    # each RPC server registered itself (its machine's address, upstream's gethostip) under upstream's key for the
    # `areal` block's names, its role and index
    ports = {**{f"actor/{w.index}": w.ports[0] for w in actors}, **{f"proxy/{f.index}": f.ports[0] for f in forks}}
    assert {k: int(v.rsplit(":", 1)[1]) for k, v in seen["registered"].items()} == ports
