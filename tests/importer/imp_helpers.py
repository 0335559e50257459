"""Helpers for the importer tests: write an upstream config, import and check it, list located codes."""
from __future__ import annotations

import textwrap
from pathlib import Path

from areal_compiler.importers.options import ImportOptions

GSM8K = """\
experiment_name: gsm8k-grpo
trial_name: trial0
cluster:
  n_nodes: 1
  n_gpus_per_node: 8
  fileroot: /tmp/areal/experiments
  name_resolve: {type: nfs, nfs_record_root: /tmp/areal/name_resolve}
scheduler:
  type: null
rollout:
  backend: "sglang:d4"
  max_concurrent_rollouts: 256
  queue_size: null
  consumer_batch_size: ${train_dataset.batch_size}
  max_head_offpolicyness: 2
  scheduling_spec: ${actor.scheduling_spec}
actor:
  backend: "fsdp:d4"
  experiment_name: ${experiment_name}
  trial_name: ${trial_name}
  kl_ctl: 0.0
  scheduling_spec:
    - task_type: worker
      port_count: 2
      gpu: 1
      mem: 32
      cmd: python3 -m areal.infra.rpc.rpc_server
      env_vars: {}
ref:
  backend: ${actor.backend}
  experiment_name: ${experiment_name}
  trial_name: ${trial_name}
  scheduling_strategy:
    type: colocation
    target: actor
  scheduling_spec: ${actor.scheduling_spec}
train_dataset:
  batch_size: 256
  path: openai/gsm8k
  type: rl
saver: &names {experiment_name: "${experiment_name}", trial_name: "${trial_name}", fileroot: "${cluster.fileroot}"}
evaluator: *names
recover: *names
stats_logger: *names
"""


def write(tmp_path: Path, text: str, name: str = "upstream.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def imported(tmp_path: Path, text: str, **options):
    """(ImportedSource, Checked) for an upstream config text."""
    from areal_compiler.check import check_file
    from areal_compiler.importers.load import load_source
    from areal_compiler.importers.options import CURRENT

    path = write(tmp_path, text)
    token = CURRENT.set(ImportOptions(**options))
    try:
        return load_source(str(path)), check_file(str(path))
    finally:
        CURRENT.reset(token)


def codes(checked) -> list[tuple[str, int, int]]:
    return [(d.code, d.span.line if d.span else 0, d.span.col if d.span else 0) for d in checked.diagnostics]


def only(checked, code: str):
    found = [d for d in checked.diagnostics if d.code == code]
    assert len(found) == 1, (code, [d.render() for d in checked.diagnostics])
    return found[0]


def user_accelerator(text: str, name: str = "") -> str:
    """The --accelerator a user would pass for an upstream config: its node size (cluster.n_gpus_per_node, default
    8), an Ascend 910B node for an Ascend config (an NPU file name or Ascend's HCCL_ variables), an H100 node when
    the catalog has one of that size, else another pinned GPU model, else GPU_<n>xANY."""
    import yaml

    from areal_compiler.spec.catalog import CATALOG

    data = yaml.safe_load(text)
    cluster = data.get("cluster") if isinstance(data, dict) else None
    per_node = cluster.get("n_gpus_per_node", 8) if isinstance(cluster, dict) else 8
    if per_node == 0:
        return "CPU"
    if "npu" in name.lower() or "HCCL_" in text:
        return f"NPU_{per_node}x910B"
    pinned = [n for n in CATALOG if n.startswith(f"GPU_{per_node}x") and not n.endswith("xANY")]
    return f"GPU_{per_node}xH100" if f"GPU_{per_node}xH100" in CATALOG else (pinned or [f"GPU_{per_node}xANY"])[0]
