"""Every validation rule: a minimal bad file, and the code, line and column it must be reported at."""
from __future__ import annotations

import pytest

from helpers import BASE, located, write


def sub(old: str, new: str, text: str = BASE) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


ROLLOUT_CMD = "    cmd: python3 -m rollout\n"
ACTOR_CMD = "    cmd: python3 -m train\n"

CASES = {
    # the driver
    "role named driver": (sub("  actor:\n", "  driver:\n"), ("E425", 10, 3)),
    "role named <role>-file beside <role>": (sub("  actor:\n", "  rollout-file:\n"), ("E426", 10, 3)),
    "driver cmd empty": (BASE + "driver: {cmd: '  '}\n", ("E441", 13, 15)),
    "driver cmd unsplittable": (BASE + "driver: {cmd: 'python3 \"train.py'}\n", ("E443", 13, 15)),
    "driver env contract var": (BASE + "driver: {cmd: train, scheduling_spec: {env_vars: {RANK: '0'}}}\n",
                                ("E432", 13, 51)),
    "driver gets no devices": (BASE + "driver: {cmd: train, scheduling_spec: {gpu: 1}}\n", ("E201", 13, 40)),
    # upstream: areal
    "upstream role cmd passes an upstream flag": (
        sub(ACTOR_CMD, "    cmd: python3 -m train --worker-index=3 --role actor\n    upstream: areal\n"),
        ("E444", 12, 10)),
    "upstream role without ports": (
        BASE + "    upstream: areal\n    scheduling_spec: {port_count: 0}\n", ("E445", 14, 35)),
    "upstream on a fork: false role": (
        BASE + "  ref:\n    upstream: areal\n    scheduling_strategy: {type: colocation, target: actor, fork: false}\n",
        ("E445", 14, 5)),
    "upstream driver not a python command": (BASE + "driver: {cmd: ./train.sh, upstream: areal}\n", ("E445", 13, 15)),
    "upstream driver python -m without a module": (BASE + "driver: {cmd: python3 -m, upstream: areal}\n",
                                                   ("E445", 13, 15)),
    "areal name service root relative": (BASE + "areal: {name_resolve: {nfs_record_root: nr}}\n", ("E446", 13, 41)),
    "areal etcd3 address without port": (BASE + "areal: {name_resolve: {type: etcd3, etcd3_addr: etcd}}\n",
                                         ("E446", 13, 49)),
    "areal empty trial name": (BASE + "areal: {trial_name: ''}\n", ("E446", 13, 21)),
    "areal unknown name service": (BASE + "areal: {name_resolve: {type: zk}}\n", ("E203", 13, 30)),
    # schema
    "unknown key, did you mean": (sub("  num_accelerators: 8", "  num_accelerator: 8"), ("E201", 5, 3)),
    "missing key": (sub("trial_name: t0\n", ""), ("E202", 1, 1)),
    "wrong type (string for int)": (sub("num_accelerators: 8", 'num_accelerators: "8"'), ("E203", 5, 21)),
    "bad literal": (BASE + "    scheduling_strategy: {type: colocate}\n", ("E203", 13, 33)),
    "no roles": (BASE[:BASE.index("roles:")] + "roles: {}\n", ("E203", 6, 8)),
    "slurm key in scheduling_spec": (BASE + "    scheduling_spec: {nodelist: n1}\n", ("E204", 13, 23)),
    "unquoted time is a number": (BASE + "slurm: {time: 24:00:00}\n", ("E203", 13, 15)),
    # catalog and budget
    "unknown accelerator": (sub("GPU_8xH100", "gpu_8xh100"), ("E401", 4, 16)),
    "not a multiple of per-node": (sub("num_accelerators: 8", "num_accelerators: 12"), ("E402", 5, 21)),
    "zero accelerators": (sub("num_accelerators: 8", "num_accelerators: 0"), ("E402", 5, 21)),
    "budget mismatch": (sub("num_accelerators: 8", "num_accelerators: 16"), ("E403", 5, 21)),
    "one node partly used": (sub('"fsdp:d4"', '"fsdp:d2"'), ("W402", 5, 21)),
    "role larger than a node, not whole nodes": (
        sub("num_accelerators: 8", "num_accelerators: 16", sub('"fsdp:d4"', '"fsdp:d12"')), ("E404", 11, 14)),
    "sglang instance over a node, not a multiple": (
        sub("num_accelerators: 8", "num_accelerators: 16", sub('"sglang:d4"', '"sglang:d1t12"',
                                                               sub('"fsdp:d4"', '"fsdp:d4"'))), ("E405", 8, 14)),
    "vllm instance over a node": (
        sub("num_accelerators: 8", "num_accelerators: 24", sub('"sglang:d4"', '"vllm:d1t16"',
                                                               sub('"fsdp:d4"', '"fsdp:d8"'))), ("E406", 8, 14)),
    "inference pipeline parallel": (sub('"sglang:d4"', '"sglang:d2p2"'), ("E407", 8, 14)),
    "allocation string error points inside the string": (sub('"fsdp:d4"', '"fsdp:d4p2"'), ("A006", 11, 22)),
    "role backend with +": (sub('"fsdp:d4"', '"fsdp:d2+fsdp:d2"'), ("E408", 11, 22)),
    "backend and replicas": (sub(ACTOR_CMD, ACTOR_CMD + "    replicas: 4\n"), ("E409", 13, 5)),
    "gpu contradicts backend": (BASE + "    scheduling_spec: {gpu: 2}\n", ("E410", 13, 28)),
    # colocation
    "colocation target missing": (BASE + "  ref: {backend: \"fsdp:d4\", scheduling_strategy: {type: colocation}}\n",
                                  ("E411", 13, 50)),
    "colocation target unknown": (BASE + "  ref:\n    backend: \"fsdp:d4\"\n"
                                         "    scheduling_strategy: {type: colocation, target: actr}\n", ("E411", 15, 53)),
    "colocated with itself": (BASE + "  ref:\n    backend: \"fsdp:d4\"\n"
                                     "    scheduling_strategy: {type: colocation, target: ref}\n", ("E412", 15, 53)),
    "colocation cycle": (BASE + "  a:\n    backend: \"fsdp:d4\"\n    scheduling_strategy: {type: colocation, target: b}\n"
                                "  b:\n    backend: \"fsdp:d4\"\n    scheduling_strategy: {type: colocation, target: a}\n",
                         ("E413", 15, 53)),
    "colocated world size differs": (BASE + "  ref:\n    backend: \"fsdp:d2\"\n"
                                            "    scheduling_strategy: {type: colocation, target: actor}\n",
                                     ("E414", 14, 14)),
    "forked helper replicas differ": (BASE + "  proxy:\n    replicas: 3\n    cmd: python3 proxy.py\n"
                                             "    scheduling_strategy: {type: colocation, target: rollout}\n",
                                      ("E414", 14, 15)),
    "fork false with cmd": (BASE + "  ev:\n    cmd: x\n    scheduling_strategy: {type: colocation, target: rollout, "
                                   "fork: false}\n", ("E415", 14, 5)),
    "separation with target": (BASE + "    scheduling_strategy: {target: rollout}\n", ("E416", 13, 35)),
    # names
    "role name with colon": (sub("  actor:\n", "  \"act:or\":\n"), ("E420", 10, 3)),
    "role name with underscore": (sub("  actor:\n", "  act_or:\n"), ("E420", 10, 3)),
    "experiment name with underscore": (sub("experiment_name: exp", "experiment_name: my_exp"), ("E421", 1, 18)),
    "trial name with dash": (sub("trial_name: t0", "trial_name: t-0"), ("E422", 2, 13)),
    "derived name too long": (sub("experiment_name: exp", "experiment_name: " + "e" * 48), ("E423", 10, 3)),
    "namespace not DNS": (BASE + "kubernetes: {namespace: RL_Team}\n", ("E424", 13, 25)),
    # env
    "env var name invalid": (BASE + "    scheduling_spec: {env_vars: {1BAD: x}}\n", ("E430", 13, 34)),
    "visibility var set": (BASE + "    scheduling_spec: {env_vars: {CUDA_VISIBLE_DEVICES: \"0\"}}\n",
                           ("E431", 13, 34)),
    "contract var set": (BASE + "    scheduling_spec: {env_vars: {MASTER_PORT: \"1\"}}\n", ("E432", 13, 34)),
    "secret also plain env": (BASE + "    scheduling_spec: {env_vars: {HF_TOKEN: x}}\nsecrets:\n  HF_TOKEN: {file: /s}\n",
                              ("E433", 13, 34)),
    # cmd and ports
    "cmd missing": (sub(ACTOR_CMD, ""), ("E440", 10, 3)),
    "cmd empty": (sub(ACTOR_CMD, "    cmd: \"  \"\n"), ("E441", 12, 10)),
    "cmd with --port": (sub(ACTOR_CMD, "    cmd: python3 -m train --port 8000\n"), ("E442", 12, 10)),
    "cmd unbalanced quote": (sub(ACTOR_CMD, "    cmd: python3 -c 'print(1)\n"), ("E443", 12, 10)),
    "training port_count 1": (BASE + "    scheduling_spec: {port_count: 1}\n", ("E450", 13, 35)),
    "cpu zero": (BASE + "    scheduling_spec: {cpu: 0}\n", ("E452", 13, 28)),
    # staleness and runtime
    "staleness negative": (BASE + "staleness: {max_head_offpolicyness: -1, consumer_batch_size: 4}\n",
                           ("E460", 13, 37)),
    "queue too small": (BASE + "staleness: {max_head_offpolicyness: 1, consumer_batch_size: 8, queue_size: 4}\n",
                        ("E461", 13, 76)),
    "gate role unknown": (BASE + "staleness: {max_head_offpolicyness: 1, consumer_batch_size: 8, gate_role: actr}\n",
                          ("E462", 13, 75)),
    "hung_after not above heartbeat": (BASE + "runtime: {heartbeat_interval: 5, hung_after: 5}\n", ("E470", 13, 46)),
    "runtime value not a number": (BASE + "runtime: {grace_period: .nan}\n", ("E203", 13, 25)),
    "runtime value infinite": (BASE + "runtime: {hung_after: .inf}\n", ("E203", 13, 23)),
    "fork false world size differs": (BASE + "  ref:\n    backend: \"fsdp:d2\"\n"
                                             "    scheduling_strategy: {type: colocation, target: actor, fork: false}\n",
                                      ("E414", 14, 14)),
    "base_port past 65535": (BASE + "runtime: {base_port: 70000}\n", ("E471", 13, 22)),
    "relative fileroot": (BASE + "fileroot: areal/runs\n", ("E472", 13, 11)),
    "fileroot with percent": (BASE + "fileroot: /shared/%u\n", ("E472", 13, 11)),
    "base_port too low": (BASE + "runtime: {base_port: 80}\n", ("E471", 13, 22)),
    "slurm value with newline": (BASE + "slurm: {partition: \"gpu\\nx\"}\n", ("E481", 13, 20)),
    "slurm version format": (BASE + "slurm: {version: \"22\"}\n", ("E480", 13, 18)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_rule(tmp_path, name):
    text, expected = CASES[name]
    found = located(write(tmp_path, text))
    assert expected in found, f"{name}: expected {expected}, got {found}"


def test_base_is_valid(tmp_path):
    assert located(write(tmp_path, BASE)) == []


def test_every_error_reported_in_one_run(tmp_path):
    text = sub("trial_name: t0", "trial_name: t-0", sub("GPU_8xH100", "GPU_8xH100"))
    text = sub(ACTOR_CMD, "    cmd: python3 -m train --port 1\n", text)
    text += "    scheduling_spec: {env_vars: {CUDA_VISIBLE_DEVICES: \"0\"}}\n"
    codes = [c for c, _, _ in located(write(tmp_path, text))]
    assert codes == ["E422", "E442", "E431"]  # sorted by position


def test_sharing_opt_in_turns_budget_error_into_warning(tmp_path):
    text = sub("num_accelerators: 8", "num_accelerators: 8\n  allow_device_sharing: true",
               sub('"fsdp:d4"', '"fsdp:d8"', sub('"sglang:d4"', '"sglang:d8"')))
    from areal_compiler.check import check_file

    result = check_file(str(write(tmp_path, text)))
    assert result.ok and [d.code for d in result.diagnostics] == ["W401"]
    without = text.replace("\n  allow_device_sharing: true", "")
    assert ("E403", 5, 21) in located(write(tmp_path, without, "b.yaml"))


def test_roles_sharing_a_slurm_component_must_agree(tmp_path):
    """Slurm cannot put two components on one node, so roles sharing a node share settings; compile says where."""
    from areal_compiler.pipeline import compile_file

    text = BASE.replace(ROLLOUT_CMD, ROLLOUT_CMD + "    slurm: {qos: high}\n") + "    slurm: {qos: low}\n"
    result = compile_file(str(write(tmp_path, text)), ("local", "slurm"))
    assert not result.ok and not result.artifacts
    assert [(d.code, d.span.line, d.span.col) for d in result.diagnostics] == [("E490", 14, 13)]
    assert "set different slurm.qos" in result.diagnostics[0].message
