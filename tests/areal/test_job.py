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
import shutil
from pathlib import Path

from helpers import free_port_block
from upstream_training import run_job
from areal_compiler.importers.options import CURRENT, ImportOptions
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
  n_nodes: 1
  n_gpus_per_node: 0
  fileroot: {root}/fileroot
  name_resolve: {{type: nfs, nfs_record_root: {root}/name_resolve}}
scheduler: {{type: local}}
train_dataset: {{path: unused, type: sft, batch_size: 2, scheduling_spec: null}}
actor:
  backend: "fsdp:d2"
  path: unused
  experiment_name: ${{experiment_name}}
  trial_name: ${{trial_name}}
  scheduling_spec:
    - {{cmd: "{python} -m areal.infra.rpc.rpc_server", cpu: 1, gpu: 0, mem: 1, port_count: 2,
       env_vars: {{PYTHONPATH: {programs}}}}}
stats_logger: &names {{experiment_name: "${{experiment_name}}", trial_name: "${{trial_name}}",
                      fileroot: "${{cluster.fileroot}}"}}
saver: *names
evaluator: *names
recover: *names
"""
OVERLAY = """\
roles:
  proxy:
    cmd: {python} -m areal.infra.rpc.rpc_server
    upstream: areal
    scheduling_spec: {{cpu: 1, mem: 1, port_count: 1}}
    scheduling_strategy: {{type: colocation, target: actor}}
runtime: {{base_port: {base_port}, grace_period: 20}}
"""


def _check_report(plan, home: Path) -> None:
    """The driver's JSON report against the plan: upstream's controller saw exactly the planned workers."""
    driver_log = next(home.rglob("driver/0.log")).read_text(errors="replace")
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
    # config's own names (the `areal` block's, not the experiment's sanitized ones), its role and index
    ports = {**{f"actor/{w.index}": w.ports[0] for w in actors}, **{f"proxy/{f.index}": f.ports[0] for f in forks}}
    assert {k: int(v.rsplit(":", 1)[1]) for k, v in seen["registered"].items()} == ports


def test_a_compiled_job_runs_upstream_workers_and_an_unchanged_controller(areal_python, tmp_path):
    exp = tmp_path / "job.areal.yaml"
    exp.write_text(EXPERIMENT.format(root=tmp_path, python=areal_python, programs=PROGRAMS,
                                     base_port=free_port_block(16)), encoding="utf-8")
    (tmp_path / "job.yaml").write_text(CONFIG.format(root=tmp_path, python=areal_python, programs=PROGRAMS),
                                       encoding="utf-8")
    run_job([str(exp)], tmp_path, tmp_path / "home")
    _check_report(plan_file(str(exp)).plan, tmp_path / "home")


def test_an_upstream_config_runs_as_is_with_the_training_script_as_driver(areal_python, tmp_path):
    """The same job from an upstream config, imported: its roles run upstream's workers, the driver is the script
    given with --driver (a path relative to the checkout `areal` runs in, as upstream's own command lines are) and
    reads the config's copy from the compiled folder (`--config areal-config.yaml`)."""
    checkout = tmp_path / "checkout"
    (checkout / "examples" / "sft").mkdir(parents=True)
    config = checkout / "examples" / "sft" / "job.yaml"
    config.write_text(CONFIG.format(root=tmp_path, python=areal_python, programs=PROGRAMS), encoding="utf-8")
    for program in ("job_driver.py", "mini_engine.py"):
        shutil.copy(PROGRAMS / program, checkout / "examples" / "sft" / program)
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(OVERLAY.format(python=areal_python, base_port=free_port_block(16)), encoding="utf-8")
    options = ["--driver", f"{areal_python} examples/sft/job_driver.py", "--overlay", str(overlay)]
    run_job(["examples/sft/job.yaml", *options], checkout, tmp_path / "home")
    token = CURRENT.set(ImportOptions(driver=options[1], overlay=str(overlay)))
    try:
        plan = plan_file(str(config)).plan
    finally:
        CURRENT.reset(token)
    assert plan.roles["actor"].upstream == plan.roles["driver"].upstream == "areal"
    assert plan.areal["experiment_name"] == "job_upstream" and plan.experiment_name == "job-upstream"
    _check_report(plan, tmp_path / "home")
