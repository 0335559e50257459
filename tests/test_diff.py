"""`areal diff`: what a change of an experiment does to the job, named exactly and nothing else; no change for
identical or reformatted files; the exit codes of diff(1); git revisions; the markdown, svg and JSON outputs."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import EXAMPLES, ROOT, areal
from test_picture import geometry_problems
from areal_compiler.plan import picture
from areal_compiler.review import report
from areal_compiler.review.changes import uncovered, differing, plan_data
from areal_compiler.review.sides import read_sides, review

E = ROOT / "examples"
REFERENCE = """\
  ref:
    backend: "fsdp:d8"
    scheduling_strategy: {type: colocation, target: actor}
secrets:"""
SECRET = """\
  HF_TOKEN:
    file: /shared/secrets/hf
    kubernetes: {name: hf, key: token}
staleness:"""
OWN_NODES = ("    scheduling_strategy: {type: colocation, target: actor, fork: true}\n",
             "    cmd: python3 -m areal.infra.rpc.rpc_server\n")
# (example, [(old text, new text), ...], what `areal diff` must name: (section, subject, what), in order)
PAIRS = {
    "backend engine": ("two-node-decoupled.yaml", [('"sglang:d4t2"', '"vllm:d4t2"')], [
        ("roles", "rollout", "backend")]),
    "backend shape": ("two-node-decoupled.yaml", [('"sglang:d4t2"', '"sglang:d8t1"')], [
        ("roles", "rollout", "backend"), ("roles", "rollout", "workers"), ("roles", "rollout", "devices per worker"),
        ("totals", "", "processes"), ("totals", "", "CPUs"), ("totals", "", "memory (GB)"),
        ("placement", "rollout/0-3", "moved"), ("placement", "rollout/4-7", "added"),
        ("kubernetes", "pods rollout", "cpu"), ("kubernetes", "pods rollout", "memory"),
        ("slurm", "job component rollout", "mem"), ("slurm", "job component rollout", "ntasks-per-node"),
        ("slurm", "job component rollout", "ntasks"), ("slurm", "step rollout", "ntasks"),
        ("slurm", "step rollout", "mem"), ("ports", "rollout", "ports")]),  # actor's node keeps its ports
    "role added": ("two-node-decoupled.yaml", [("secrets:", REFERENCE)], [
        ("roles", "ref", "added"), ("totals", "", "processes"), ("totals", "", "CPUs"), ("totals", "", "memory (GB)"),
        ("kubernetes", "pods actor", "cpu"), ("kubernetes", "pods actor", "memory"),
        ("slurm", "job component actor", "cpus-per-task"), ("slurm", "job component actor", "mem"),
        ("slurm", "step actor", "cpus-per-task"), ("slurm", "step actor", "mem"), ("ports", "actor", "ports")]),
    "replicas doubled": ("demo-cpu.yaml", [("    replicas: 2\n", "    replicas: 4\n")], [
        ("roles", "rollout", "workers"), ("roles", "proxy", "workers"), ("totals", "", "processes"),
        ("totals", "", "CPUs"), ("totals", "", "memory (GB)"), ("placement", "rollout/2-3", "added"),
        ("ray", "placement group", "bundle 0"), ("slurm", "job component rollout+actor+driver", "mem"),
        ("slurm", "job component rollout+actor+driver", "ntasks-per-node"),
        ("slurm", "job component rollout+actor+driver", "ntasks"), ("slurm", "step rollout", "ntasks"),
        ("slurm", "step rollout", "mem"), ("ports", "rollout", "ports"), ("ports", "proxy", "ports"),
        ("ports", "actor", "ports"), ("ports", "driver", "ports")]),
    "role on its own nodes": ("ppo-critic.yaml", [("num_accelerators: 16", "num_accelerators: 24"), OWN_NODES], [
        ("roles", "critic", "colocation"), ("roles", "critic", "nodes"), ("totals", "", "nodes"),
        ("totals", "", "devices"), ("totals", "", "device-hours"), ("placement", "critic/0-7", "added"),
        ("slurm", "job component actor", "cpus-per-task"), ("slurm", "job component actor", "mem"),
        ("slurm", "job component critic", "added"), ("slurm", "step actor", "cpus-per-task"),
        ("slurm", "step actor", "mem"), ("slurm", "step critic", "added"), ("ports", "actor", "ports"),
        ("ports", "ref", "ports"), ("ports", "critic", "ports")]),
    "secret added": ("two-node-decoupled.yaml", [("staleness:", SECRET)], [
        ("environment", "secret HF_TOKEN", "added")]),
    "slurm time limit": ("two-node-decoupled.yaml", [('time: "48:00:00"', 'time: "72:00:00"')], [
        ("totals", "", "device-hours"), ("slurm", "job component rollout", "time"),
        ("slurm", "job component actor", "time")]),
}


def edited(tmp_path: Path, example: str, edits: list[tuple[str, str]], name: str = "new.yaml") -> Path:
    text = (E / example).read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / name
    path.write_text(text)
    return path


def review_of(old, new, base=None, targets=None):
    result = review(*read_sides(tuple(map(str, (old, new) if new else (old,))), base, targets))
    assert all(s.result is None or s.result.ok for s in (result.old, result.new))
    return result


@pytest.mark.parametrize("name", PAIRS)
def test_a_change_is_named_exactly_in_the_jobs_terms(tmp_path, name):
    example, edits, expected = PAIRS[name]
    result = review_of(E / example, edited(tmp_path, example, edits))
    assert [(c.section, c.subject, c.what) for c in result.shown] == expected


def test_the_changes_say_the_values_a_reviewer_needs(tmp_path):
    example, edits, _ = PAIRS["backend shape"]
    result = review_of(E / example, edited(tmp_path, example, edits))
    said = {(c.subject, c.what): (c.old, c.new) for c in result.shown}
    assert said[("rollout", "backend")] == ("sglang:d4t2", "sglang:d8t1")
    assert said[("rollout/0-3", "moved")] == ("node 0, devices 0-7", "node 0, devices 0-3")
    assert said[("rollout/4-7", "added")] == (None, "node 0, devices 4-7")
    time = review_of(E / example, edited(tmp_path, example, PAIRS["slurm time limit"][1]))
    assert time.shown[0].old == "768 (time limit 48:00:00)" and time.shown[0].new == "1152 (time limit 72:00:00)"
    secret = review_of(E / example, edited(tmp_path, example, PAIRS["secret added"][1]))
    assert secret.shown[0].new == "file /shared/secrets/hf, kubernetes secret hf key token"  # a reference


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_identical_and_reformatted_experiments_are_no_change(tmp_path, example):
    out = areal("diff", str(example), str(example))
    assert (out.returncode, out.stdout, out.stderr) == (0, b"", b"")
    data = yaml.safe_load(example.read_text())
    reordered = tmp_path / example.name  # keys in reverse order, block style, no comments
    reordered.write_text(yaml.safe_dump(dict(reversed(list(data.items()))), sort_keys=False))
    template = data.get("slurm", {}).get("template")
    if template:  # the site template it names comes along, at the same place beside it
        (tmp_path / template).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / template).write_bytes((example.parent / template).read_bytes())
    assert review_of(example, reordered).shown == []


@pytest.mark.parametrize("edit, path", [
    (("runtime: {heartbeat_interval: 5, hung_after: 60}", "runtime: {heartbeat_interval: 5, hung_after: 90}"),
     "runtime.hung_after"),
    (("kubernetes: {namespace: rl-training}", "kubernetes: {namespace: rl-eval}"), "kubernetes.namespace"),
    (("fileroot: /shared/areal/experiments", "fileroot: /shared/other"), "fileroot"),
])
def test_everything_else_is_named_by_its_key_path(tmp_path, edit, path):
    result = review_of(E / "two-node-decoupled.yaml", edited(tmp_path, "two-node-decoupled.yaml", [edit]))
    assert [(c.section, c.subject) for c in result.shown] == [("other", path)]


@pytest.mark.parametrize("name", PAIRS)
def test_every_difference_of_the_plans_is_said_somewhere(tmp_path, name):
    example, edits, _ = PAIRS[name]
    result = review_of(E / example, edited(tmp_path, example, edits))
    diff = differing(plan_data(result.old.plan), plan_data(result.new.plan))
    assert diff and uncovered(diff, result.changes) == {}


@pytest.mark.parametrize("old", EXAMPLES, ids=lambda p: p.stem)
def test_between_any_two_examples_everything_is_said_in_every_format(old):
    """Examples differ in nearly every field: accelerators, roles, forks, drivers, gates, secrets, targets."""
    for new in EXAMPLES:
        result = review_of(old, new)
        assert bool(result.shown) == (old != new)
        if old != new:
            diff = differing(plan_data(result.old.plan), plan_data(result.new.plan))
            assert uncovered(diff, result.changes) == {}, new
            assert report.text(result) and report.markdown(result) and json.dumps(report.data(result))
            assert geometry_problems(picture.svg(result.new.plan, result.marks)) == []


def test_an_invalid_side_prints_its_diagnostics_and_exits_1(tmp_path):
    bad = edited(tmp_path, "two-node-decoupled.yaml", [('"fsdp:d8"', '"fsdp:d9"')])
    out = areal("diff", str(E / "two-node-decoupled.yaml"), str(bad))
    assert out.returncode == 1 and out.stdout == b""
    assert f"{bad}:".encode() in out.stderr and b"error[" in out.stderr and b"Traceback" not in out.stderr
    data = json.loads(areal("diff", str(bad), str(E / "two-node-decoupled.yaml"), "-o", "json").stdout)["data"]
    assert data["valid"] is False and data["files"][0]["file"] == str(bad)


@pytest.mark.parametrize("args, message", [
    ((), b"Missing argument"),
    (("a.yaml",), b"give two experiment files"),
    (("a.yaml", "b.yaml", "--base", "HEAD"), b"give one file"),
    (("a.yaml", "b.yaml", "-o", "json", "--format", "markdown"), b"-o json prints the changes as data"),
    (("a.yaml", "b.yaml", "--target", "nosuch"), b"unknown"),
    (("a.yaml", "--base=--output=x"), b"a revision does not start with `-`"),
])
def test_usage_errors_exit_2(args, message):
    out = areal("diff", *args)
    assert out.returncode == 2 and message in out.stderr


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)


@pytest.fixture
def repo(tmp_path):
    """A git repository with two commits of experiments/grpo.yaml: the Slurm time limit changed in the second."""
    (tmp_path / "experiments").mkdir()
    target = tmp_path / "experiments" / "grpo.yaml"
    target.write_text((E / "two-node-decoupled.yaml").read_text())
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "first")
    target.write_text(target.read_text().replace('time: "48:00:00"', 'time: "72:00:00"'))
    git(tmp_path, "commit", "-qam", "second")
    return tmp_path


def test_a_file_against_a_git_revision(repo):
    out = areal("diff", "experiments/grpo.yaml", "--base", "HEAD~1", cwd=repo)
    assert out.returncode == 1, out.stderr
    assert out.stdout.decode().startswith("experiments/grpo.yaml@HEAD~1 -> experiments/grpo.yaml: device-hours 768")
    inside = areal("diff", "grpo.yaml", "--base", "HEAD", cwd=repo / "experiments")  # paths relative to the file
    assert (inside.returncode, inside.stdout) == (0, b"")
    assert areal("diff", str(repo / "experiments" / "grpo.yaml"), "--base", "HEAD~1").returncode == 1


def test_a_file_new_since_the_revision_is_all_added(repo):
    (repo / "experiments" / "new.yaml").write_text((E / "demo-cpu.yaml").read_text())
    out = areal("diff", "experiments/new.yaml", "--base", "HEAD", cwd=repo)
    text = out.stdout.decode()
    assert out.returncode == 1 and "new experiment (not in HEAD)" in text and "rollout: added" in text


def test_an_unknown_revision_or_no_repository_is_a_usage_error(repo, tmp_path_factory):
    out = areal("diff", "experiments/grpo.yaml", "--base", "no-such-branch", cwd=repo)
    assert out.returncode == 2 and b"--base no-such-branch" in out.stderr and b"fetch" in out.stderr
    alone = tmp_path_factory.mktemp("norepo")
    (alone / "grpo.yaml").write_text((E / "two-node-decoupled.yaml").read_text())
    out = areal("diff", "grpo.yaml", "--base", "HEAD", cwd=alone)
    assert out.returncode == 2 and b"not a git repository" in out.stderr


def test_an_invalid_file_at_the_revision_is_located_there(repo):
    path = repo / "experiments" / "grpo.yaml"
    path.write_text(path.read_text().replace("fsdp:d8", "fsdp:d9"))
    git(repo, "commit", "-qam", "broken")
    path.write_text((E / "two-node-decoupled.yaml").read_text())
    out = areal("diff", "experiments/grpo.yaml", "--base", "HEAD", cwd=repo)
    assert out.returncode == 1 and b"experiments/grpo.yaml@HEAD:" in out.stderr and out.stdout == b""


def test_a_site_template_is_compared_as_it_was_at_the_revision(tmp_path):
    (tmp_path / "site").mkdir()
    template = (E / "site" / "cluster.sbatch.j2").read_text()
    (tmp_path / "site" / "cluster.sbatch.j2").write_text(template)
    (tmp_path / "grpo.yaml").write_text((E / "slurm-site-template.yaml").read_text())
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "first")
    assert areal("diff", "grpo.yaml", "--base", "HEAD", cwd=tmp_path).returncode == 0  # the template at HEAD too
    (tmp_path / "site" / "cluster.sbatch.j2").write_text(template.replace("NCCL_DEBUG=WARN", "NCCL_DEBUG=INFO"))
    out = areal("diff", "grpo.yaml", "--base", "HEAD", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    [line] = [line for line in out.stdout.decode().splitlines() if "slurm.template" in line]
    assert line.strip().startswith("slurm.template.sha256: ")  # its sha256, not its whole text


def test_markdown_has_a_headline_a_table_and_folded_details(tmp_path):
    example, edits, _ = PAIRS["backend shape"]
    new = edited(tmp_path, example, edits)
    text = areal("diff", str(E / example), str(new), "--format", "markdown").stdout.decode()
    lines = text.splitlines()
    assert lines[0].startswith("#### `areal diff`") and lines[2].startswith("**rollout changed;")
    assert "| **rollout** | backend | `sglang:d4t2` | `sglang:d8t1` |" in lines
    assert "<details><summary>Slurm: what the cluster is asked for (5)</summary>" in lines
    assert text.count("<details>") == text.count("</details>") == 3  # slurm, kubernetes, ports
    assert report.markdown(review_of(E / example, E / example)) == ""


def test_markdown_cells_survive_pipes_and_backticks(tmp_path):
    new = edited(tmp_path, "two-node-decoupled.yaml", [("python3 -m areal.infra.rpc.rpc_server",
                                                        "python3 serve.py --sep '|' --q '`x`'")])
    text = areal("diff", str(E / "two-node-decoupled.yaml"), str(new), "--format", "markdown").stdout.decode()
    row = next(line for line in text.splitlines() if line.startswith("| **rollout** | command"))
    assert row.count(" | ") == 3 and "\\|" in row and "`` " in row  # four cells, the pipe escaped, fenced longer


def test_json_envelope(tmp_path):
    example, edits, expected = PAIRS["slurm time limit"]
    out = areal("diff", str(E / example), str(edited(tmp_path, example, edits)), "-o", "json")
    data = json.loads(out.stdout)["data"]
    assert out.returncode == 1 and data["changed"] is True
    assert [(c["section"], c["subject"], c["what"]) for c in data["changes"]] == expected
    assert data["old"]["run_id"] != data["new"]["run_id"]
    same = json.loads(areal("diff", str(E / example), str(E / example), "-o", "json").stdout)["data"]
    assert same["changed"] is False and same["changes"] == []


def test_svg_marks_moved_added_and_removed_workers(tmp_path):
    example, edits, _ = PAIRS["backend shape"]
    picture = areal("diff", str(E / example), str(edited(tmp_path, example, edits)), "--format", "svg").stdout
    text = picture.decode()
    assert geometry_problems(text) == []
    assert text.count('data-mark="moved"') == 4 + 1 and text.count('data-mark="added"') == 4 + 1  # + legend
    back = areal("diff", str(edited(tmp_path, example, edits)), str(E / example), "--format", "svg").stdout.decode()
    assert geometry_problems(back) == [] and back.count('data-mark="removed"') == 4 + 1


def test_an_upstream_config_is_diffed_with_the_import_options(tmp_path):
    from importer.imp_helpers import GSM8K

    old = tmp_path / "old.yaml"
    old.write_text(GSM8K)
    new = tmp_path / "new.yaml"
    new.write_text(GSM8K.replace("kl_ctl: 0.0", "kl_ctl: 0.1").replace('"sglang:d4"', '"sglang:d2t2"'))
    out = areal("diff", str(old), str(new), "--driver", "python3 -m areal.examples.gsm8k_grpo")
    text = out.stdout.decode()
    assert out.returncode == 1, out.stderr
    assert "rollout: backend sglang:d4 -> sglang:d2t2" in text
    assert "areal-config.yaml: actor.kl_ctl: 0.0 -> 0.1" in text  # the upstream file's own key path
    refused = areal("diff", str(E / "demo-cpu.yaml"), str(E / "demo-cpu.yaml"), "--driver", "python3 x.py")
    assert refused.returncode == 1 and b"E518" in refused.stderr  # the same options, the same rules as `plan`


def test_many_workers_moving_alike_are_one_line_per_role(tmp_path):
    roles = {"rollout": '    backend: "sglang:d8t8"\n    cmd: python3 -m serve\n',
             "actor": '    backend: "fsdp:d64"\n    cmd: python3 -m train\n'}
    head = "experiment_name: e\ntrial_name: t\ncompute: {accelerator: GPU_8xH100, num_accelerators: 128}\nroles:\n"
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(head + "".join(f"  {n}:\n{r}" for n, r in roles.items()))
    new.write_text(head + "".join(f"  {n}:\n{r}" for n, r in reversed(roles.items())))  # placed in this order
    moves = [(c.subject, c.old, c.new) for c in review_of(old, new).shown if c.section == "placement"]
    assert moves == [("actor/0-63", "nodes 8-15", "nodes 0-7"), ("rollout/0-7", "nodes 0-7", "nodes 8-15")]
