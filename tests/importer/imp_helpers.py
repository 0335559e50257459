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
  scheduling_strategy:
    type: colocation
    target: actor
  scheduling_spec: ${actor.scheduling_spec}
train_dataset:
  batch_size: 256
  path: openai/gsm8k
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
