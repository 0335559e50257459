"""The synthetic experiment of the scale benchmarks: the two-node example's mix of roles scaled to NODES nodes.

Used by bench_compile.py (the scale sweep) and tests/test_scale.py. Half the nodes run SGLang servers (TP=2, a proxy
forked beside each), the other half FSDP training ranks (a reference model forked beside each): on average 6
workers and 6 forked processes per GPU_8xH100 node, plus the driver, a secret and every target's block."""
from __future__ import annotations

WORKERS_PER_NODE = 6  # on average: 4 rollout servers on a rollout node, 8 ranks on a training node
FORKS_PER_NODE = 6


def synthetic(nodes: int) -> str:
    """The experiment YAML for an even NODES >= 2 (65,536 devices at 8,192 nodes, the format's bound)."""
    if nodes < 2 or nodes % 2:
        raise ValueError("the synthetic experiment needs an even number of nodes, at least 2")
    return f"""experiment_name: scale-{nodes}
trial_name: trial0
compute: {{accelerator: GPU_8xH100, num_accelerators: {nodes * 8}}}
image: ghcr.io/areal-project/areal-runtime:v2.0.0-sglang
fileroot: /shared/areal/experiments
roles:
  rollout:
    backend: "sglang:d{nodes * 2}t2"
    cmd: python3 -m areal.infra.rpc.rpc_server --log-level info
    scheduling_spec: {{cpu: 24, mem: 200}}
  actor:
    backend: "fsdp:d{nodes * 4}"
    cmd: python3 -m areal.infra.rpc.rpc_server --log-level info
    scheduling_spec: {{cpu: 12, mem: 120, env_vars: {{NCCL_DEBUG: WARN}}}}
  ref:
    backend: "fsdp:d{nodes * 4}"
    cmd: python3 -m areal.infra.rpc.rpc_server --log-level info
    scheduling_strategy: {{type: colocation, target: actor, fork: true}}
  proxy:
    cmd: python3 -m areal.experimental.openai.proxy.proxy_rollout_server
    scheduling_spec: {{cpu: 2, mem: 8, port_count: 1}}
    scheduling_strategy: {{type: colocation, target: rollout, fork: true}}
driver:
  cmd: python3 train.py --config gsm8k_grpo.yaml
secrets:
  WANDB_API_KEY: {{file: /shared/secrets/wandb_api_key, kubernetes: {{name: wandb, key: api-key}}}}
staleness: {{max_head_offpolicyness: 4, max_concurrent_rollouts: 256, consumer_batch_size: 256}}
runtime: {{heartbeat_interval: 5, hung_after: 60}}
slurm: {{partition: gpu, time: "24:00:00"}}
kubernetes: {{namespace: rl-training}}
"""
