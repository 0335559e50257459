"""Real upstream AReaL SFT training as a compiled job, for the tests that run it on each target.

Used by tests/areal/test_training.py (`areal run`), tests/slurm/test_slurm_training.py and
tests/ray/test_ray_training.py: writes the experiment (actor = upstream's RPC servers, driver = our SFT script
on upstream's SFTTrainer) and upstream's SFT config for the tiny local model, reads back what training wrote, and
checks it. Also `run_job`, `areal run` that must end 0 and leave no process, shared with tests/areal/test_job.py."""
from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

from helpers import ROOT, areal

PROGRAMS = ROOT / "tests" / "areal" / "programs"
STEPS = 8  # 32 rows, batches of 8, two epochs
# TORCHDYNAMO_DISABLE: upstream compiles some functions with torch.compile; on CPU inductor then builds C++ for
# about a minute at the first step. That is not what these tests are about, so the workers run them eagerly.
EXPERIMENT = """\
experiment_name: sft-tiny
trial_name: t0
compute: {compute}
fileroot: {root}/fileroot
areal:
  experiment_name: sft_tiny
  trial_name: trial_0
  name_resolve: {{type: nfs, nfs_record_root: {root}/name_resolve}}
roles:
  actor:
    {workers}
    cmd: {python} -m areal.infra.rpc.rpc_server
    upstream: areal
    scheduling_spec: {{cpu: 1, mem: 4, port_count: 2,
                      env_vars: {{HF_HUB_OFFLINE: "1", TORCHDYNAMO_DISABLE: "1"}}}}
{data_role}driver:
  cmd: {python} {programs}/sft_train.py --config {root}/sft.yaml
  upstream: areal
  scheduling_spec: {{cpu: 1, mem: 4, env_vars: {{HF_HUB_OFFLINE: "1", HF_HOME: {root}/hf}}}}
runtime: {{base_port: {base_port}, grace_period: 20}}
{extra}"""
CONFIG = """\
experiment_name: sft_tiny
trial_name: trial_0
seed: 1
total_train_epochs: 2
tokenizer_path: ${{actor.path}}
cluster:
  n_nodes: {nodes}
  n_gpus_per_node: {gpus}
  fileroot: {root}/fileroot
  name_resolve: {{type: nfs, nfs_record_root: {root}/name_resolve}}
scheduler: {{type: local}}
actor:
  backend: "fsdp:d2"
  experiment_name: ${{experiment_name}}
  trial_name: ${{trial_name}}
  path: {tiny}/model
  dtype: float32
  attn_impl: sdpa
  mb_spec: {{max_tokens_per_mb: 1024}}
  optimizer: {{type: adam, lr: 1.0e-2, weight_decay: 0.0, lr_scheduler_type: constant, gradient_clipping: 1.0,
              warmup_steps_proportion: 0.0}}
  scheduling_spec:
    - {{cmd: "{python} -m areal.infra.rpc.rpc_server", cpu: 1, gpu: {gpus}, mem: 4, port_count: 2}}
train_dataset: &data {{path: {tiny}/gsm8k, type: sft, batch_size: 8, shuffle: false, pin_memory: false,
                      num_workers: 0, scheduling_spec: {data_spec}, setup_timeout: 600}}
valid_dataset: *data
saver: &names {{experiment_name: "${{experiment_name}}", trial_name: "${{trial_name}}",
               fileroot: "${{cluster.fileroot}}", freq_epochs: 1}}
evaluator: *names
recover: {{mode: disabled, experiment_name: "${{experiment_name}}", trial_name: "${{trial_name}}",
          fileroot: "${{cluster.fileroot}}"}}
stats_logger: {{experiment_name: "${{experiment_name}}", trial_name: "${{trial_name}}",
               fileroot: "${{cluster.fileroot}}", tensorboard: {{path: {root}/fileroot/tensorboard}}}}
"""
# Upstream's data service (its default for a dataset with a scheduling_spec): one guard, which forks the data
# worker, router and gateway itself; the controller asks for the `data-data` role. Its setup_timeout (120 s by
# default) is raised in CONFIG: on a loaded 2-core machine the three forks have taken 124 s to import and answer.
DATA_ROLE = """\
  data-data:
    replicas: 1
    cmd: {python} -m areal.infra.rpc.guard
    upstream: areal
    scheduling_spec: {{cpu: 1, mem: 4, env_vars: {{HF_HUB_OFFLINE: "1", HF_HOME: {root}/hf}}}}
"""
DATA_SPEC = "{{cmd: {python} -m areal.infra.rpc.guard, cpu: 1, gpu: 0, mem: 4}}"


def make_tiny(python: str, out: Path) -> Path:
    """The tiny model and data set (tests/areal/make_tiny.py), made in the AReaL venv."""
    proc = subprocess.run([python, str(ROOT / "tests" / "areal" / "make_tiny.py"), str(out)], capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def write_job(root: Path, python: str, tiny: Path, *, base_port: int, two_nodes: bool = False,
              data_service: bool = False, extra: str = "") -> Path:
    """The experiment and the SFT config in root; `two_nodes`: one rank on each of two one-GPU nodes (the GPUs
    are only planned: torch finds no CUDA here and upstream's engine runs on CPU), else a CPU node with both;
    `data_service`: the data sets are served by upstream's data service, else loaded by the driver."""
    if two_nodes:
        compute, workers, nodes, gpus = "{accelerator: GPU_1xA10, num_accelerators: 2}", 'backend: "fsdp:d2"', 2, 1
    else:
        compute, workers, nodes, gpus = "{accelerator: CPU, num_accelerators: 0}", "replicas: 2", 1, 0
    data_spec = DATA_SPEC.format(python=python) if data_service else "null"
    (root / "sft.yaml").write_text(CONFIG.format(root=root, python=python, tiny=tiny, nodes=nodes, gpus=gpus,
                                                 data_spec=data_spec), encoding="utf-8")
    data_role = DATA_ROLE.format(python=python, root=root) if data_service else ""
    exp = root / "sft.areal.yaml"
    exp.write_text(EXPERIMENT.format(compute=compute, root=root, workers=workers, python=python, data_role=data_role,
                                     programs=PROGRAMS, base_port=base_port, extra=extra), encoding="utf-8")
    return exp


def processes_naming(text: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and int(pid) != os.getpid():
            found.append(f"{pid}: {cmdline[:200]}")
    return found


def run_job(args: list[str], cwd: Path, home: Path) -> None:
    """`areal run ARGS` in cwd; it must end 0 and leave no process naming cwd."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AREAL_", "PYTHON"))}
    env["AREAL_HOME"] = str(home)
    run = areal("run", *args, "--quiet", cwd=cwd, env=env, timeout=900)
    logs = "\n".join(f"--- {p.relative_to(home)}\n{p.read_text(errors='replace')[-2000:]}"
                     for p in sorted(home.rglob("*.log")))
    assert run.returncode == 0, f"{run.stdout.decode()[-2000:]}\n{run.stderr.decode()[-3000:]}\n{logs}"
    assert not processes_naming(str(cwd)), "the job left processes behind"


def check_trained(python: str, root: Path, tiny: Path, actor_logs: list[str]) -> dict:
    """What upstream's trainer wrote under the planned fileroot: a finite loss per step that goes down, one
    checkpoint per epoch that loads back and fits the data better than the initial weights, the stats logger's
    records; and a micro-batch on each actor rank at every step."""
    proc = subprocess.run([python, str(PROGRAMS / "inspect_training.py"), str(root / "fileroot"), str(tiny)],
                          capture_output=True, text=True, timeout=600, check=False,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout)
    loss = [seen["loss"].get(str(step)) for step in range(STEPS)]
    assert all(v is not None and math.isfinite(v) for v in loss), seen["loss"]
    half = STEPS // 2
    assert sum(loss[half:]) / half < 0.8 * sum(loss[:half]) / half and loss[-1] < loss[0], loss
    assert [Path(p).name for p in seen["checkpoints"]] == ["epoch0epochstep3globalstep3",
                                                          "epoch1epochstep3globalstep7"], seen["checkpoints"]
    assert seen["changed_tensors"] == seen["tensors"] > 0
    assert seen["trained_loss"] < 0.7 * seen["initial_loss"], seen
    stats_log = next((root / "fileroot" / "logs").glob("*/sft_tiny/trial_0/main.log")).read_text(errors="replace")
    assert f"Train step {STEPS}/{STEPS} done." in stats_log
    for rank, log in enumerate(actor_logs):
        assert log.count(f"Microbatch #tokens (rank {rank}): [") >= STEPS, log[-3000:]
    return seen
