"""The rollout side on the compiled plan, as far as it goes without a generation engine (SGLang and vLLM do not run
on these machines): upstream AReaL 1.0.4's RolloutController, created as PPOTrainer does, finds the planned rollout
workers and creates its engine on each (programs/stand_in_rollout.py: no server), publishes policy versions to
every one, and its StalenessManager grants and refuses the same rollouts, with the same capacity after every
event, as the staleness gate our agent serves from the experiment's `staleness` block (programs/rollout_driver.py).
"""
from __future__ import annotations

import json

from helpers import ROOT, free_port_block
from upstream_training import PROGRAMS, run_job
from areal_compiler.pipeline import plan_file

EXPERIMENT = """\
experiment_name: rollout-plan
trial_name: t0
compute: {{accelerator: CPU, num_accelerators: 0}}
fileroot: {root}/fileroot
areal: {{experiment_name: rollout_plan, trial_name: trial_0,
        name_resolve: {{type: nfs, nfs_record_root: {root}/name_resolve}}}}
roles:
  rollout:
    replicas: 2
    cmd: {python} -m areal.infra.rpc.rpc_server
    upstream: areal
    scheduling_spec: {{cpu: 1, mem: 2, env_vars: {{PYTHONPATH: {programs}}}}}
staleness: {{max_head_offpolicyness: 1, max_concurrent_rollouts: 3, consumer_batch_size: 4, gate_role: rollout}}
driver:
  cmd: {python} {programs}/rollout_driver.py --config {root}/grpo.yaml
  upstream: areal
  scheduling_spec: {{env_vars: {{PYTHONPATH: "{programs}:{demo}"}}}}
runtime: {{base_port: {base_port}, grace_period: 20}}
"""
CONFIG = """\
experiment_name: rollout_plan
trial_name: trial_0
cluster:
  n_nodes: 1
  n_gpus_per_node: 0
  fileroot: {root}/fileroot
  name_resolve: {{type: nfs, nfs_record_root: {root}/name_resolve}}
scheduler: {{type: local}}
rollout:
  backend: "sglang:d2"
  experiment_name: ${{experiment_name}}
  trial_name: ${{trial_name}}
  max_head_offpolicyness: 1
  max_concurrent_rollouts: 3
  consumer_batch_size: 4
  scheduling_spec:
    - {{cmd: "{python} -m areal.infra.rpc.rpc_server", cpu: 1, gpu: 0, mem: 2, port_count: 1}}
actor: {{backend: "fsdp:d1", path: unused, experiment_name: "${{experiment_name}}", trial_name: "${{trial_name}}"}}
train_dataset: {{path: unused, type: rl, batch_size: 4, scheduling_spec: null}}
stats_logger: &names {{experiment_name: "${{experiment_name}}", trial_name: "${{trial_name}}",
                      fileroot: "${{cluster.fileroot}}"}}
saver: *names
evaluator: *names
recover: *names
"""


def test_upstream_rollout_controller_finds_the_planned_workers_and_agrees_with_our_gate(areal_python, tmp_path):
    exp = tmp_path / "rollout.areal.yaml"
    exp.write_text(EXPERIMENT.format(root=tmp_path, python=areal_python, programs=PROGRAMS,
                                     demo=ROOT / "examples" / "demo", base_port=free_port_block(16)),
                   encoding="utf-8")
    (tmp_path / "grpo.yaml").write_text(CONFIG.format(root=tmp_path, python=areal_python), encoding="utf-8")
    home = tmp_path / "home"
    run_job([str(exp)], tmp_path, home)
    log = next(home.rglob("driver/0.log")).read_text(errors="replace")
    seen = json.loads(next(line for line in reversed(log.splitlines()) if line.startswith("{")))
    plan = plan_file(str(exp)).plan
    assert seen["scheduler"] == "PlannedScheduler"
    assert seen["workers"] == [[f"rollout/{w.index}", "127.0.0.1", [str(p) for p in w.ports]]
                               for w in plan.workers_of("rollout")]
    assert [(e["engine_id"], e["version"], e["backend"]) for e in seen["engines"]] == \
        [("0", 3, "sglang:d2"), ("1", 3, "sglang:d2")]  # created, initialized and versioned on each worker
    assert len({e["pid"] for e in seen["engines"]}) == 2
    for step in seen["steps"]:
        granted, capacity, running = step["granted"], step["capacity"], step["running"]
        assert capacity[0] == capacity[1] and running[0] == running[1] and granted in (None, [True, True],
                                                                                       [False, False]), step
    refused = {s["running"][0] for s in seen["steps"] if s["granted"] == [False, False]}
    assert 3 in refused and refused - {3}, seen["steps"]  # refused by the concurrency limit and by staleness
    assert [s["granted"] for s in seen["steps"]].count([True, True]) >= 8
