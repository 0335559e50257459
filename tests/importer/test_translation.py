"""What an upstream config becomes: roles as upstream's trainers create them, names, cluster, accelerator, staleness."""
from __future__ import annotations

from imp_helpers import GSM8K, codes, imported, only


def roles(tmp_path, text, **options) -> dict:
    source, checked = imported(tmp_path, text, **options)
    assert checked.ok, [d.render() for d in checked.diagnostics]
    return source.data["roles"]


def test_gsm8k_roles_follow_upstream_controllers(tmp_path):
    got = roles(tmp_path, GSM8K)
    assert list(got) == ["data-data", "actor", "rollout", "eval-rollout"]  # kl_ctl 0: no ref
    assert got["actor"]["backend"] == "fsdp:d4" and got["rollout"]["backend"] == "sglang:d4"
    assert got["eval-rollout"]["scheduling_strategy"] == {"type": "colocation", "target": "rollout"}
    assert got["data-data"] == {"replicas": 1, "cmd": "python3 -m areal.infra.rpc.guard", "upstream": "areal",
                                "scheduling_spec": {"cpu": 1, "mem": 10, "gpu": 0}}
    # upstream's schedulers give every worker command its arguments (names, role, index, name_resolve, fileroot)
    assert {name: role.get("upstream") for name, role in got.items()} == dict.fromkeys(got, "areal")


def test_the_areal_block_keeps_the_configs_own_names_and_name_service(tmp_path):
    text = GSM8K.replace("gsm8k-grpo", "GSM8K_grpo").replace(
        "{type: nfs, nfs_record_root: /tmp/areal/name_resolve}", "{type: etcd3, etcd3_addr: \"etcd:2379\"}")
    source, checked = imported(tmp_path, text)
    assert checked.ok, [d.render() for d in checked.diagnostics]
    assert source.data["experiment_name"] == "gsm8k-grpo"  # ours, sanitized (W502)
    assert source.data["areal"] == {"experiment_name": "GSM8K_grpo", "trial_name": "trial0",
                                    "name_resolve": {"type": "etcd3", "etcd3_addr": "etcd:2379"}}
    assert source.origins[("areal", "name_resolve", "etcd3_addr")].span.line == 7  # where the config says it


def test_ref_exists_only_when_kl_ctl_is_positive_or_defaulted(tmp_path):
    assert "ref" in roles(tmp_path, GSM8K.replace("kl_ctl: 0.0", "kl_ctl: 0.05"))
    assert "ref" in roles(tmp_path, GSM8K.replace("  kl_ctl: 0.0\n", ""))  # upstream's default kl_ctl is 0.1


def test_without_rollout_the_ref_is_dpos_and_always_exists(tmp_path):
    text = GSM8K.split("rollout:")[0] + "actor:" + GSM8K.split("\nactor:")[1].replace("  kl_ctl: 0.0\n", "")
    got = roles(tmp_path, text)  # loaded as upstream's DPOConfig, whose engines have no kl_ctl
    assert "ref" in got and "rollout" not in got and "eval-rollout" not in got


def test_teacher_follows_its_engine_type(tmp_path):
    teacher = "teacher:\n  engine_type: rollout\n  rollout:\n    backend: vllm:d1\n"
    got = roles(tmp_path, GSM8K.replace("sglang:d4", "sglang:d3") + teacher)
    assert got["teacher"]["backend"] == "vllm:d1"
    train = ("teacher:\n  engine_type: train\n  train:\n    backend: fsdp:d1\n    experiment_name: e\n"
             "    trial_name: t\n")
    got = roles(tmp_path, GSM8K.replace("sglang:d4", "sglang:d3") + train)
    assert got["teacher"]["backend"] == "fsdp:d1" and list(got).index("teacher") < list(got).index("rollout")


def test_online_agent_mode_has_no_eval_rollout_and_no_data_service(tmp_path):
    text = GSM8K.replace("  max_head_offpolicyness: 2\n", "  max_head_offpolicyness: 2\n  agent: {mode: online}\n")
    assert list(roles(tmp_path, text)) == ["actor", "rollout"]


def test_rollout_resources_scale_with_the_instance_size(tmp_path):
    got = roles(tmp_path, GSM8K.replace("sglang:d4", "sglang:d2t2"))
    assert got["rollout"]["scheduling_spec"]["mem"] == 64 and got["actor"]["scheduling_spec"]["mem"] == 32


def test_staleness_zero_means_upstreams_default(tmp_path):
    source, checked = imported(tmp_path, GSM8K.replace("max_concurrent_rollouts: 256", "max_concurrent_rollouts: 0"))
    assert checked.ok
    assert source.data["staleness"] == {"max_head_offpolicyness": 2, "consumer_batch_size": 256}


def test_names_upstream_allows_are_mapped_with_a_warning(tmp_path):
    source, checked = imported(tmp_path, GSM8K.replace("gsm8k-grpo", "GSM8K_grpo").replace("trial0", "1.5b-air"))
    assert checked.ok
    assert (source.data["experiment_name"], source.data["trial_name"]) == ("gsm8k-grpo", "15bair")
    assert [(c, ln) for c, ln, _ in codes(checked) if c == "W502"] == [("W502", 1), ("W502", 2)]


def test_accelerator_option_sets_type_and_node_count(tmp_path):
    source, checked = imported(tmp_path, GSM8K, accelerator="GPU_8xH100")
    assert checked.ok and source.data["compute"] == {"accelerator": "GPU_8xH100", "num_accelerators": 8}
    assert not [c for c, _, _ in codes(checked) if c == "W504"]


def test_accelerator_is_derived_with_a_located_warning(tmp_path):
    source, checked = imported(tmp_path, GSM8K)
    assert source.data["compute"] == {"accelerator": "GPU_8xANY", "num_accelerators": 8}
    assert (only(checked, "W504").span.line, only(checked, "W504").span.col) == (5, 20)
    source, checked = imported(tmp_path, GSM8K.replace("fsdp:d4", "fsdp:d2").replace("sglang:d4", "sglang:d2"))
    assert source.data["compute"] == {"accelerator": "GPU_8xANY", "num_accelerators": 8}  # the node, 4 idle
    assert checked.ok and "devices 4-7" in only(checked, "W402").message
    source, _ = imported(tmp_path, GSM8K.replace("n_gpus_per_node: 8", "n_gpus_per_node: 0"))
    assert source.data["compute"]["accelerator"] == "CPU" and source.data["roles"]["actor"]["replicas"] == 4


def test_underivable_accelerator_names_the_option(tmp_path):
    text = GSM8K.replace("n_gpus_per_node: 8", "n_gpus_per_node: 3").replace("fsdp:d4", "fsdp:d1")
    _, checked = imported(tmp_path, text.replace("sglang:d4", "sglang:d2"))
    assert "--accelerator" in only(checked, "E515").hint and not checked.ok


def test_offload_opts_in_to_device_sharing(tmp_path):
    source, checked = imported(tmp_path, "enable_offload: true\n" + GSM8K.replace("n_gpus_per_node: 8",
                                                                                 "n_gpus_per_node: 4"))
    assert checked.ok and source.data["compute"]["allow_device_sharing"] is True
    assert "enable_offload" in only(checked, "W503").message


def test_legacy_allocation_mode_is_not_read_by_upstreams_loader(tmp_path):
    """Upstream's loader requires a backend in every engine (its allocation_mode is read only by its SPMD
    launchers): each missing one is named where its engine is, with the allocation_mode part to write there."""
    text = GSM8K.replace('  backend: "sglang:d4"\n', "").replace('  backend: "fsdp:d4"\n', "")
    text = text.replace("  backend: ${actor.backend}\n", "")
    _, checked = imported(tmp_path, "allocation_mode: sglang:d4+fsdp:d2t2\n" + text)
    errors = [c for c in codes(checked) if c[0].startswith(("A", "E"))]
    assert errors == [("E522", 11, 1), ("E522", 17, 1), ("E522", 28, 1)]  # rollout, actor, ref
    assert all("allocation_mode" in d.hint for d in checked.diagnostics if d.code == "E522")
    assert only(checked, "W509").span.line == 1
    _, checked = imported(tmp_path, "allocation_mode: sglang:d4+fsdp:d4\n" + GSM8K)
    assert checked.ok and "deprecated" in only(checked, "W509").message  # beside backends: ignored, as upstream


def test_missing_backend_is_upstreams_own_error(tmp_path):
    _, checked = imported(tmp_path, GSM8K.replace('  backend: "fsdp:d4"\n', ""))
    assert (only(checked, "E522").span.line, only(checked, "E522").span.col) == (17, 1)
    assert "actor.backend" in only(checked, "E522").message


def test_shell_and_secret_settings_are_not_carried_silently(tmp_path):
    text = GSM8K.replace("      env_vars: {}", "      env_vars: {WANDB_API_KEY: abc, AREAL_PROXY_WARN_ONCE: '1'}\n"
                                               "      additional_bash_cmds: [pip install x]")
    source, checked = imported(tmp_path, text)
    assert checked.ok  # upstream's own AREAL_ knobs are allowed; only our contract's names are reserved
    assert "additional_bash_cmds" not in str(source.data)
    assert {c for c, _, _ in codes(checked)} >= {"W505", "W508"}


def test_unknown_scheduling_spec_key_is_an_error(tmp_path):
    """Reported once, where it is written, though rollout and ref copy the spec through `${actor.scheduling_spec}`."""
    _, checked = imported(tmp_path, GSM8K.replace("      mem: 32", "      memory: 32"))
    assert only(checked, "E520").span.line == 26 and only(checked, "E520").hint == "did you mean `mem`?"


def test_driver_gets_the_config_file(tmp_path):
    source, _ = imported(tmp_path, GSM8K, driver="python3 examples/math/gsm8k_rl.py")
    assert source.data["driver"] == {"cmd": "python3 examples/math/gsm8k_rl.py --config areal-config.yaml",
                                     "upstream": "areal"}  # run through run-trainer: the planned scheduler
    source, _ = imported(tmp_path, GSM8K, driver="python3 x.py --config=c.yaml")
    assert source.data["driver"]["cmd"] == "python3 x.py --config=c.yaml"


def test_original_bytes_travel_as_an_attachment(tmp_path):
    source, _ = imported(tmp_path, GSM8K + "# trailing comment\n")
    assert source.attachments == {"areal-config.yaml": (GSM8K + "# trailing comment\n").encode()}


def test_scheduler_type_slurm_makes_slurm_a_default_target(tmp_path):
    source, checked = imported(tmp_path, GSM8K.replace("type: null", "type: slurm"))
    assert checked.ok and source.data["slurm"] == {}
    _, checked = imported(tmp_path, GSM8K.replace("type: null", "type: kubernetes"))
    assert only(checked, "E517").span.line == 9
