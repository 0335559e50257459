"""Roles, devices, nodes and names of an imported config as upstream AReaL 2.0 makes them: v2 engines, AWEX and
chained colocation, one node partly used, Ascend nodes, and names too long for generated Kubernetes objects."""
from __future__ import annotations

import json

from imp_helpers import GSM8K, codes, imported, only, write

from helpers import areal


def plan(tmp_path, text: str, *options: str) -> dict:
    result = areal("plan", str(write(tmp_path, text)), *options, "-o", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    return json.loads(result.stdout)["data"]


def devices(data: dict, role: str) -> list[list[int]]:
    return [w["devices"] for w in data["workers"] if w["role"] == role]


V2 = GSM8K.replace('  backend: "sglang:d4"\n', '  backend: "sglang:d2t2"\n  _version: v2\n').replace(
    '  backend: "fsdp:d4"\n', '  backend: "fsdp:d4"\n  _version: v2\n')


def test_v2_engines_run_upstreams_guards_under_its_role_names(tmp_path):
    """GatewayTrainController: `<role>-guard`, one per device; RolloutControllerV2: `<role>-inf`, one per instance
    with cpu and mem scaled by its devices; the eval controller: `eval-rollout-inf`, one CPU guard per instance."""
    source, checked = imported(tmp_path, V2, accelerator="GPU_8xH100")
    assert checked.ok, [d.render() for d in checked.diagnostics]
    roles = source.data["roles"]
    assert list(roles) == ["data-data", "actor-guard", "rollout-inf", "eval-rollout-inf"]
    assert roles["actor-guard"]["cmd"] == "python -m areal.v2.training_service.guard"
    assert roles["actor-guard"]["backend"] == "fsdp:d4" and roles["actor-guard"]["scheduling_spec"]["mem"] == 32
    assert roles["rollout-inf"]["cmd"] == "python -m areal.v2.inference_service.guard"
    assert roles["rollout-inf"]["scheduling_spec"]["mem"] == 64  # 32 per device, 2 devices per instance
    assert roles["eval-rollout-inf"] == {"replicas": 2, "cmd": "python -m areal.v2.inference_service.guard",
                                         "upstream": "areal", "scheduling_spec": {"gpu": 0, "port_count": 2,
                                                                                  "mem": 32}}
    assert source.data["staleness"]["max_head_offpolicyness"] == 2  # still upstream's rollout settings


def test_awex_colocation_shares_the_actors_devices(tmp_path):
    """A v1 actor with weight_update_mode awex hands the devices between actor and rollout (upstream's
    rl_trainer), whatever the strategies say: the rollout is planned on the actor's devices."""
    text = GSM8K.replace('  backend: "sglang:d4"\n', '  backend: "sglang:d1t4"\n').replace(
        "  kl_ctl: 0.0\n", "  kl_ctl: 0.0\n  weight_update_mode: awex\n").replace("n_gpus_per_node: 8",
                                                                                  "n_gpus_per_node: 4")
    text = text.replace('"fsdp:d4"', '"megatron:d4"')
    source, checked = imported(tmp_path, "enable_offload: true\n" + text, accelerator="GPU_4xA100_80GB")
    assert checked.ok, [d.render() for d in checked.diagnostics]
    assert source.data["compute"] == {"accelerator": "GPU_4xA100_80GB", "num_accelerators": 4,
                                      "allow_device_sharing": True}
    assert "AWEX colocation" in only(checked, "W503").message
    data = plan(tmp_path, "enable_offload: true\n" + text, "--accelerator", "GPU_4xA100_80GB")
    assert devices(data, "rollout") == [[0, 1, 2, 3]] and devices(data, "actor") == [[0], [1], [2], [3]]


CHAINED = GSM8K.replace("  max_head_offpolicyness: 2\n", "  max_head_offpolicyness: 2\n  scheduling_strategy:\n"
                        "    type: colocation\n    target: actor\n").replace("n_gpus_per_node: 8", "n_gpus_per_node: 4")


def test_chained_colocation_resolves_to_the_device_owner(tmp_path):
    """eval-rollout is forked onto rollout, which shares the actor's devices: the chain ends on the actor."""
    source, checked = imported(tmp_path, "enable_offload: true\n" + CHAINED, accelerator="GPU_4xA100_80GB")
    assert checked.ok, [d.render() for d in checked.diagnostics]
    roles = source.data["roles"]
    assert roles["rollout"]["scheduling_strategy"] == {"type": "colocation", "target": "actor"}
    assert roles["eval-rollout"]["scheduling_strategy"] == {"type": "colocation", "target": "actor"}
    data = plan(tmp_path, "enable_offload: true\n" + CHAINED, "--accelerator", "GPU_4xA100_80GB")
    forks = {f["role"] for w in data["workers"] if w["role"] == "actor" for f in w["forks"]}
    assert forks == {"rollout", "eval-rollout"} and devices(data, "actor") == [[0], [1], [2], [3]]


def test_one_node_partly_used_is_allowed_with_the_idle_devices_named(tmp_path):
    """Class 6: 2 + 2 devices of an 8-device node run as upstream runs them; Slurm asks for the whole node."""
    text = GSM8K.replace('"sglang:d4"', '"sglang:d2"').replace('"fsdp:d4"', '"fsdp:d2"')
    _, checked = imported(tmp_path, text, accelerator="GPU_8xH100")
    assert checked.ok and "devices 4-7 of the node stay idle" in only(checked, "W402").message
    result = areal("compile", str(write(tmp_path, text)), "--accelerator", "GPU_8xH100", "--target", "slurm",
                   "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    sbatch = (tmp_path / "out" / "slurm" / "job.sbatch").read_text()
    assert "#SBATCH --gres=gpu:8" in sbatch and "--gres=gpu:2" in sbatch  # the node; each step its own devices


ASCEND = GSM8K.replace('"sglang:d4"', '"vllm:d4"').replace(
    "      env_vars: {}", "      env_vars: {HCCL_CONNECT_TIMEOUT: '7200', PYTORCH_NPU_ALLOC_CONF: 'x'}")


def test_an_ascend_config_derives_the_8_npu_910b_node(tmp_path):
    """Class 7: upstream's Ascend examples use 8-NPU 910B servers (Atlas 800T A2)."""
    source, checked = imported(tmp_path, ASCEND)
    assert checked.ok and source.data["compute"] == {"accelerator": "NPU_8x910B", "num_accelerators": 8}
    assert "HCCL_CONNECT_TIMEOUT" in only(checked, "W504").message
    from areal_compiler.spec.catalog import CATALOG

    npu = CATALOG["NPU_8x910B"]
    assert (npu.kubernetes_resource, npu.slurm_gres, npu.ray_resource) == ("huawei.com/Ascend910", "npu", "NPU")
    assert dict(npu.kubernetes_node_labels) == {"accelerator": ("huawei-Ascend910",),
                                                "accelerator-type": ("module-910b-8",)}
    for accelerator in ("NPU_8x910B", "GPU_8xH100"):  # --accelerator takes either: the user knows the cluster
        source, checked = imported(tmp_path, ASCEND, accelerator=accelerator)
        assert checked.ok and source.data["compute"]["accelerator"] == accelerator
    source, _ = imported(tmp_path, ASCEND.replace("HCCL_CONNECT_TIMEOUT", "NCCL_DEBUG"))
    assert source.data["compute"]["accelerator"] == "GPU_8xANY"  # no Ascend-only variable: a GPU


LONG = GSM8K.replace("experiment_name: gsm8k-grpo", "experiment_name: qwen3-5-35b-a3b-geometry3k-grpo-awex-colocate")


def test_long_names_are_shortened_with_a_hash_never_refused(tmp_path):
    """Class 4: `<experiment>-<trial>-<role>` must fit generated Kubernetes names; the training script and
    upstream's processes keep the original names."""
    source, checked = imported(tmp_path, LONG)
    assert checked.ok, [d.render() for d in checked.diagnostics]
    name = source.data["experiment_name"]
    assert name.startswith("qwen3-5-35b-a3b") and len(f"{name}-trial0-eval-rollout") <= 52
    assert name == imported(tmp_path, LONG)[0].data["experiment_name"]  # deterministic
    assert name != imported(tmp_path, LONG.replace("colocate", "colocatf"))[0].data["experiment_name"]
    assert "shortened with a hash" in only(checked, "W502").message
    assert source.data["areal"]["experiment_name"] == "qwen3-5-35b-a3b-geometry3k-grpo-awex-colocate"
    result = areal("compile", str(write(tmp_path, LONG)), "--accelerator", "GPU_8xH100", "--target", "kubernetes",
                   "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert b"E423" not in result.stderr


def test_a_colocated_role_of_another_shape_shares_devices_instead(tmp_path):
    """Upstream 2.0's Slurm scheduler starts a colocated role with another worker count on the target's nodes:
    imported as a role of its own on the same devices (our colocation forks one process per target worker)."""
    text = CHAINED.replace('"sglang:d4"', '"sglang:d1t4"')
    source, checked = imported(tmp_path, "enable_offload: true\n" + text, accelerator="GPU_4xA100_80GB")
    assert checked.ok, [d.render() for d in checked.diagnostics]
    assert source.data["roles"]["rollout"]["scheduling_strategy"] == {"type": "separation"}
    assert source.data["roles"]["eval-rollout"]["scheduling_strategy"]["target"] == "rollout"
    assert "another shape" in only(checked, "W503").message
    assert [c for c, _, _ in codes(checked) if c.startswith("E")] == []
