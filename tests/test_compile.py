"""`areal compile`: determinism, atomic writes, --check and --diff, the local launch plan."""
from __future__ import annotations

import json
import os
import sys

import jsonschema
import pytest

from helpers import BASE, EXAMPLES, ROOT, areal, write

EXAMPLE = ROOT / "examples" / "two-node-decoupled.yaml"


def tree(path):
    return {p.relative_to(path).as_posix(): (p.read_bytes(), p.stat().st_mode & 0o777)
            for p in sorted(path.rglob("*")) if p.is_file()}


def test_identical_trees_across_hashseed_tz_locale_and_cwd(tmp_path):
    runs = [("0", "UTC", "C.UTF-8", tmp_path), ("12345", "Asia/Tokyo", "de_DE.UTF-8", ROOT),
            ("random", "America/New_York", "C", ROOT / "examples")]
    outs = []
    for i, (seed, tz, lang, cwd) in enumerate(runs):
        out = tmp_path / f"out{i}"
        env = {**os.environ, "PYTHONHASHSEED": seed, "TZ": tz, "LANG": lang, "LC_ALL": lang}
        result = areal("compile", str(EXAMPLE), "--out", str(out), cwd=cwd, env=env)
        assert result.returncode == 0, result.stderr.decode()
        outs.append(tree(out))
    assert outs[0] == outs[1] == outs[2]
    assert {"local/launch.json", "local/plan.json", "local/agent.pyz", "local/manifest.json"} <= set(outs[0])


def test_no_machine_facts_in_artifacts(tmp_path):
    out = tmp_path / "o"
    assert areal("compile", str(EXAMPLE), "--out", str(out)).returncode == 0
    for rel, (content, _) in tree(out).items():
        if rel.endswith(".pyz"):
            continue
        text = content.decode()
        for fact in (str(tmp_path), str(ROOT), os.environ.get("USER", "root") + "@", "2026-"):
            assert fact not in text, (rel, fact)


def test_check_exit_codes_and_one_byte_edit(tmp_path):
    out = tmp_path / "o"
    assert areal("compile", str(EXAMPLE), "--out", str(out)).returncode == 0
    assert areal("compile", str(EXAMPLE), "--out", str(out), "--check").returncode == 0
    plan = out / "local" / "plan.json"
    plan.write_bytes(plan.read_bytes().replace(b"20000", b"20001", 1))
    result = areal("compile", str(EXAMPLE), "--out", str(out), "--check")
    assert result.returncode == 1 and f"changed: {plan}" in result.stderr.decode()
    (out / "local" / "stray.txt").write_text("x")
    (out / "local" / "launch.json").unlink()
    data = json.loads(areal("compile", str(EXAMPLE), "--out", str(out), "--check", "-o", "json").stdout)["data"]
    assert (data["changed"], data["missing"], data["extra"]) == (["local/plan.json"], ["local/launch.json"],
                                                                 ["local/stray.txt"])


def test_diff_prints_without_writing(tmp_path):
    out = tmp_path / "o"
    areal("compile", str(EXAMPLE), "--out", str(out))
    before = tree(out)
    changed = write(tmp_path, EXAMPLE.read_text().replace("max_head_offpolicyness: 4", "max_head_offpolicyness: 5"),
                    EXAMPLE.name)
    result = areal("compile", str(changed), "--out", str(out), "--diff")
    assert result.returncode == 0
    assert '-    "max_head_offpolicyness": 4,' in result.stdout.decode()
    assert '+    "max_head_offpolicyness": 5,' in result.stdout.decode()
    assert tree(out) == before


def test_failed_compile_writes_nothing(tmp_path):
    out = tmp_path / "o"
    areal("compile", str(EXAMPLE), "--out", str(out))
    before = tree(out)
    bad = write(tmp_path, BASE.replace("trial_name: t0", "trial_name: t-0"))
    result = areal("compile", str(bad), "--out", str(out))
    assert result.returncode == 1 and "E422" in result.stderr.decode()
    assert tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.yaml", "o"]  # no temp folders left
    assert areal("compile", str(bad), "--out", str(tmp_path / "new")).returncode == 1
    assert not (tmp_path / "new").exists()


def test_files_of_removed_roles_disappear(tmp_path):
    out = tmp_path / "o"
    three = BASE + "  ref:\n    backend: \"fsdp:d4\"\n    scheduling_strategy: {type: colocation, target: actor}\n"
    path = write(tmp_path, three)
    areal("compile", str(path), "--out", str(out))
    (out / "local" / "leftover.json").write_text("{}")
    path.write_text(BASE)
    assert areal("compile", str(path), "--out", str(out)).returncode == 0
    assert not (out / "local" / "leftover.json").exists()
    assert "ref" not in (out / "local" / "plan.json").read_text()


def test_refuses_to_replace_a_foreign_folder(tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = areal("compile", str(EXAMPLE), "--out", str(out))
    assert result.returncode == 2 and "not written by areal compile" in result.stderr.decode()
    assert (out / "notes.txt").read_text() == "mine"


def test_out_through_a_symlink_writes_into_its_folder_and_keeps_the_link(tmp_path):
    """Issue 24 item 9: --out naming a link to a folder areal wrote earlier writes through it, as --check reads."""
    real, link = tmp_path / "shared" / "compiled", tmp_path / "compiled"
    assert areal("compile", str(EXAMPLE), "--out", str(real), "--target", "local,slurm").returncode == 0
    link.symlink_to(real)
    result = areal("compile", str(EXAMPLE), "--out", str(link), "--target", "local")
    assert result.returncode == 0, result.stderr.decode()
    assert f"through the link, into {real}" in result.stderr.decode()
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert sorted(p.name for p in real.iterdir()) == [".areal-compile", "local"]  # no stale slurm/
    assert areal("compile", str(EXAMPLE), "--out", str(link), "--target", "local", "--check").returncode == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary folder left
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    (tmp_path / "to-foreign").symlink_to(foreign)  # a link to a folder areal did not write is refused, as the folder
    refused = areal("compile", str(EXAMPLE), "--out", str(tmp_path / "to-foreign"))
    assert refused.returncode == 2 and "not written by areal compile" in refused.stderr.decode()
    assert (foreign / "notes.txt").read_text() == "mine" and (tmp_path / "to-foreign").is_symlink()


def test_several_inputs_get_their_own_folders(tmp_path):
    out = tmp_path / "o"
    assert areal("compile", *map(str, EXAMPLES[:2]), "--out", str(out), "--target", "local").returncode == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([".areal-compile", *(p.stem for p in EXAMPLES[:2])])


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_local_launch_plan_matches_its_schema(example):
    from areal_compiler.pipeline import compile_file

    result = compile_file(str(example), ("local",))
    launch = json.loads(result.artifacts["local/launch.json"].content)
    schema = json.loads((ROOT / "schemas" / "local-plan.schema.json").read_text())
    jsonschema.validate(launch, schema)
    plan = json.loads(result.artifacts["local/plan.json"].content)
    assert [p["name"] for p in launch["processes"]] == [f"{w['role']}/{w['index']}" for w in plan["workers"]]
    manifest = json.loads(result.artifacts["local/manifest.json"].content)
    import hashlib

    assert manifest["agent_sha256"] == hashlib.sha256(result.artifacts["local/agent.pyz"].content).hexdigest()
    assert manifest["experiment_sha256"] == plan["experiment_sha256"]


def test_unwritable_out_is_a_usage_error(tmp_path):
    (tmp_path / "file").write_text("x")
    result = areal("compile", str(EXAMPLE), "--out", str(tmp_path / "file" / "out"))
    assert result.returncode == 2 and b"cannot write" in result.stderr and b"Traceback" not in result.stderr


def test_a_failed_swap_puts_the_previous_output_back(tmp_path, monkeypatch):
    from areal_compiler import writing as output
    from areal_compiler.pipeline import compile_file

    out = tmp_path / "o"
    files = compile_file(str(EXAMPLE), ("local",)).artifacts
    output.write_tree(out, files)
    before = tree(out)
    real_rename, calls = os.rename, []

    def failing_second_rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the new tree into place
            raise OSError(28, "No space left on device")
        return real_rename(src, dst)

    monkeypatch.setattr(output.os, "rename", failing_second_rename)
    with pytest.raises(output.OutputError, match="No space left"):
        output.write_tree(out, files)
    assert tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]  # no temporary or aside folders left
