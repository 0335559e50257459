"""Upstream configs are checked against upstream's own config classes (the committed AReaL 2.0.0 tables), as its
loader checks them: keys, shapes, required values, its own checks, its defaults, and the training script's class."""
from __future__ import annotations

from imp_helpers import GSM8K, codes, imported, only, write

from helpers import areal


def errors(checked) -> list[tuple[str, int, int]]:
    return [c for c in codes(checked) if c[0][0] in "EA"]


def line_of(text: str, needle: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if needle in ln)


def test_keys_upstream_added_after_the_wheel_are_known_and_named_once(tmp_path):
    """Class 1: `exclusive` and `reservation` (SchedulingSpec, 2.0) compile; PyPI's 1.0.4 would refuse them."""
    text = GSM8K.replace("      mem: 32\n", "      mem: 32\n      exclusive: true\n      reservation: rl-week\n")
    source, checked = imported(tmp_path, text, accelerator="GPU_8xH100")
    assert checked.ok, [d.render() for d in checked.diagnostics]
    newer = only(checked, "W511")
    assert newer.span.line == line_of(text, "exclusive: true") and "areal 1.0.4 wheel" in newer.message
    assert "`actor.scheduling_spec.0.exclusive`" in newer.message and "upstream AReaL 2.0.0" in newer.message
    # upstream's SlurmScheduler passes both to the role's sbatch: they are the role's Slurm settings
    assert source.data["roles"]["actor"]["slurm"] == {"exclusive": True, "reservation": "rl-week"}


def test_a_key_no_version_knows_is_located_with_did_you_mean(tmp_path):
    text = GSM8K.replace("  kl_ctl: 0.0\n", "  kl_clt: 0.0\n")
    _, checked = imported(tmp_path, text)
    found = only(checked, "E520")
    assert (found.span.line, found.span.col) == (line_of(text, "kl_clt"), 3)
    assert found.hint == "did you mean `kl_ctl`?" and "upstream AReaL 2.0.0's PPOActorConfig" in found.message


def test_references_see_upstreams_defaults(tmp_path):
    """Class 2: `${gconfig.max_new_tokens}` with no gconfig in the file is upstream's default, 16384; the file the
    training script reads is still the original, byte for byte."""
    text = GSM8K.replace("  kl_ctl: 0.0\n", "  kl_ctl: 0.0\n  max_new_tokens: ${gconfig.max_new_tokens}\n")
    source, checked = imported(tmp_path, text)
    assert checked.ok, [d.render() for d in checked.diagnostics]
    assert source.data["roles"]["actor"]["backend"] == "fsdp:d4"
    assert source.attachments["areal-config.yaml"] == text.encode()
    from areal_compiler.importers.interpolate import resolve
    from areal_compiler.importers.upstream_schema import newest
    from areal_compiler.source import load

    resolved = resolve(load(str(write(tmp_path, text, "again.yaml"))), newest().defaults("PPOConfig"))
    assert resolved.data["actor"]["max_new_tokens"] == 16384 and not resolved.problems
    _, checked = imported(tmp_path, text.replace("${gconfig.max_new_tokens}", "${gconfig.max_new_tokenz}"))
    assert only(checked, "E501").span.line == line_of(text, "max_new_tokens:")  # no default: still an error


def test_wrong_shapes_missing_values_and_upstreams_own_checks(tmp_path):
    text = GSM8K.replace("  scheduling_spec:\n    - task_type: worker\n", "  scheduling_spec:\n    task_type: worker\n",
                         1).replace("    - task_type: worker", "    task_type: worker")
    text = text.replace("      port_count: 2\n      gpu: 1\n      mem: 32\n      cmd: python3 -m areal.infra.rpc."
                        "rpc_server\n      env_vars: {}\n", "    port_count: 2\n    gpu: 1\n")
    _, checked = imported(tmp_path, text)
    assert ("E521", line_of(text, "    task_type: worker"), 5) in errors(checked)  # a mapping, not upstream's list
    _, checked = imported(tmp_path, GSM8K.replace("  type: rl\n", ""))
    assert "`train_dataset.type` is missing" in only(checked, "E522").message
    text = GSM8K.replace("  kl_ctl: 0.0\n", "  kl_ctl: 0.0\n  rejection_sampling: {metric: binary_kl}\n")
    _, checked = imported(tmp_path, text)
    found = only(checked, "E523")  # RejectionSamplingConfig.__post_init__ refuses it, in 1.0.4 and 2.0 alike
    assert "ratio, kl_k1, kl_k2, kl_k3" in found.message and found.span.line == line_of(text, "binary_kl")


def test_upstreams_own_rejections_are_ours_with_its_reason_and_the_fix(tmp_path):
    """Class 9: a flat teacher, a `launcher` block, `behav_imp_weight_cap`, the removed behave_imp_weight_*."""
    flat = GSM8K + "teacher:\n  backend: fsdp:d1\n  path: big-model\n"
    _, checked = imported(tmp_path, flat)
    found = only(checked, "E520")
    assert "TeacherConfig" in found.message and "engine_type: train, train: {backend:" in found.hint
    _, checked = imported(tmp_path, GSM8K + "launcher:\n  trainer_cpus_per_gpu: 4\n")
    assert "no `launcher` block" in only(checked, "E520").hint  # an error even without --driver
    _, checked = imported(tmp_path, GSM8K.replace("  kl_ctl: 0.0\n", "  kl_ctl: 0.0\n  behav_imp_weight_cap: 5\n"))
    assert "rejection_sampling" in only(checked, "E520").hint
    _, checked = imported(tmp_path, GSM8K.replace("  kl_ctl: 0.0\n", "  kl_ctl: 0.0\n  behave_imp_weight_cap: 5\n"))
    assert "was removed" in only(checked, "E523").message and "rejection_sampling" in only(checked, "E523").hint


SCRIPT = """\
from dataclasses import dataclass, field

from areal.api.cli_args import GRPOConfig, load_expr_config
from .agent_config import AgentConfig


@dataclass
class EnvConfig:
    max_turns: int = 8


@dataclass
class MyConfig(GRPOConfig):
    env: EnvConfig = field(default_factory=EnvConfig)
    agent_cfg: AgentConfig = field(default_factory=AgentConfig)


def main(argv):
    config, _ = load_expr_config(argv, MyConfig)
"""
AGENT = """\
from dataclasses import dataclass


@dataclass
class AgentConfig:  # the script's own, not upstream's AgentConfig (rollout.agent)
    workflow: str = "x.Y"
"""


def test_the_training_scripts_own_class_decides_top_level_keys(tmp_path):
    """Class 3: without --driver, keys of a script's class are warnings; with it, the script's class (read, never
    run, with the local module it imports) decides, and a key it lacks is upstream's error."""
    pkg = tmp_path / "examples" / "agentic"
    pkg.mkdir(parents=True)
    (pkg / "train.py").write_text(SCRIPT)
    (pkg / "agent_config.py").write_text(AGENT)
    text = GSM8K + "env:\n  max_turns: 4\nagent_cfg:\n  workflow: a.B\n"
    _, checked = imported(tmp_path, text)
    assert checked.ok and [c for c, _, _ in codes(checked) if c == "W510"] == ["W510", "W510"]
    driver = "python3 examples/agentic/train.py"
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)  # the driver's script is read where the compile runs, as a user runs it
    try:
        _, checked = imported(tmp_path, text, driver=driver)
        assert checked.ok and not [c for c, _, _ in codes(checked) if c in ("W510", "W512")]
        _, checked = imported(tmp_path, text.replace("  max_turns: 4", "  max_turn: 4"), driver=driver)
        assert only(checked, "E520").hint == "did you mean `max_turns`?"  # nested in the script's EnvConfig
        _, checked = imported(tmp_path, text + "max_turns: 3\n", driver=driver)
        assert "MyConfig" in only(checked, "E520").message and "train.py loads the config" in \
            only(checked, "E520").message
        _, checked = imported(tmp_path, text, driver="python3 examples/missing.py")
        assert "is not there to read" in only(checked, "W512").message and checked.ok
    finally:
        os.chdir(cwd)


ROLLOUT_ONLY = """\
experiment_name: tau2-rollout
trial_name: t0
cluster: {n_nodes: 1, n_gpus_per_node: 2, fileroot: /tmp/areal}
rollout:
  backend: "sglang:d2"
  _version: v2
  scheduling_spec:
    - {cmd: python3 -m areal.infra.rpc.rpc_server, gpu: 1, cpu: 4, mem: 16, port_count: 2}
gconfig: {max_new_tokens: 512}
train_dataset: {path: tau2/train, type: rl, batch_size: 4}
saver: &names {experiment_name: "${experiment_name}", trial_name: "${trial_name}", fileroot: /tmp/areal}
evaluator: *names
recover: *names
stats_logger: *names
"""


def test_a_rollout_only_config_plans_its_rollout_and_nothing_else(tmp_path):
    """Class 3: no `actor`, a v2 rollout: upstream's rollout-only script starts RolloutControllerV2 alone."""
    source, checked = imported(tmp_path, ROLLOUT_ONLY, accelerator="GPU_2xANY")
    assert checked.ok, [d.render() for d in checked.diagnostics]
    assert source.data["roles"] == {"rollout-inf": {
        "backend": "sglang:d2", "cmd": "python -m areal.v2.inference_service.guard", "upstream": "areal",
        "scheduling_spec": {"cpu": 4, "mem": 16, "port_count": 2}}}


def test_a_file_that_is_no_experiment_is_located(tmp_path):
    """Class 8: e.g. upstream's examples/environ_ref.yaml (environment variables only), with or without options."""
    path = write(tmp_path, "# env for NPU runs\nenv_vars:\n  HCCL_CONNECT_TIMEOUT: '7200'\n", "environ.yaml")
    for extra in ((), ("--accelerator", "GPU_8xH100")):
        result = areal("validate", str(path), *extra, cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        assert b"environ.yaml:2:1: error[E524]: this file is not an experiment" in result.stderr
    typos = write(tmp_path, "experiment-name: e\ncomptue: {accelerator: CPU}\nrolse: {}\n", "typos.yaml")
    result = areal("validate", str(typos), cwd=tmp_path)  # ours, misspelled: did-you-mean, not "no experiment"
    assert b"E524" not in result.stderr and b"did you mean `compute`?" in result.stderr


HOSTILE_SCRIPT = """\
from dataclasses import dataclass, field
from areal.api.cli_args import GRPOConfig, load_expr_config


@dataclass
class A(B):
    a: "A" = field(default_factory=A)


@dataclass
class B(A):
    b: int = 1


""" + "".join(f"@dataclass\nclass L{i}:\n" + "".join(f"    f{j}: L{i + 1} = field(default_factory=L{i + 1})\n"
                                                   for j in range(12)) + "\n\n" for i in range(1, 10)) + """\
@dataclass
class L10:
    x: int = 1


@dataclass
class Top(GRPOConfig):
    me: "Top" = field(default_factory=Top)
    loop: A = field(default_factory=A)
    deep: L1 = field(default_factory=L1)


def main(argv):
    load_expr_config(argv, Top)
"""


def test_a_training_script_whose_classes_loop_or_nest_deeply_is_answered(tmp_path, monkeypatch):
    """The script is input too: classes that hold themselves, bases that loop, 12**10 nested defaults."""
    (tmp_path / "hostile.py").write_text(HOSTILE_SCRIPT)
    monkeypatch.chdir(tmp_path)
    _, checked = imported(tmp_path, GSM8K + "me: {me: {}}\nloop: {a: {}}\n", driver="python3 hostile.py")
    assert not [c for c, _, _ in codes(checked) if c in ("W510", "W512")]  # the script's class was read
    assert not checked.ok and "`me.actor` is missing" in " ".join(d.message for d in checked.diagnostics)
