"""golden/<example>/ holds what `areal compile examples/<example>.yaml --target all` writes, stored for review:
the plan once (`golden/<example>/plan.json`, identical in every target folder) and none of the runtime files that
are the same for every experiment (the agent bundle and the Ray launcher: every manifest.json pins their sha256,
checked against what this checkout ships), so an agent or launcher edit changes one line per manifest instead of
a copy per example and target, and a plan change shows once.

Regenerate only on purpose: `pytest tests/test_golden.py --update-goldens` (or AREAL_UPDATE_GOLDENS=1)."""
from __future__ import annotations

import hashlib
import json

import pytest

from helpers import EXAMPLES, ROOT, areal
from areal_compiler.bundle import agent_bundle
from areal_compiler.writing import compare, unified_diff, write_tree
from areal_compiler.pipeline import compile_file
from areal_compiler.targets import Artifact
from areal_compiler.targets import names as target_names

TARGETS = target_names()
RAY_LAUNCHER = ROOT / "compiler" / "launchers" / "ray_launcher.py"  # shipped as ray/launcher.py


def golden_view(artifacts: dict[str, Artifact]) -> dict[str, Artifact]:
    """The reviewable view of one compile: one plan.json, no agent.pyz (pinned by the manifests)."""
    plans = {a.content for rel, a in artifacts.items() if rel.endswith("/plan.json")}
    assert len(plans) == 1, "every target folder carries the same plan"
    shipped = {"agent.pyz": agent_bundle(), "launcher.py": RAY_LAUNCHER.read_bytes()}
    for rel, a in artifacts.items():
        if rel.rpartition("/")[2] in shipped:
            assert a.content == shipped[rel.rpartition("/")[2]], rel
        if rel.endswith("/manifest.json"):
            manifest = json.loads(a.content)
            assert manifest["agent_sha256"] == hashlib.sha256(shipped["agent.pyz"]).hexdigest()
            for name, content in shipped.items():
                assert manifest["files"].get(name, hashlib.sha256(content).hexdigest()) == \
                    hashlib.sha256(content).hexdigest()
    view = {rel: a for rel, a in artifacts.items()
            if rel.rpartition("/")[2] not in shipped and not rel.endswith("/plan.json")}
    return {**view, "plan.json": Artifact("plan.json", plans.pop())}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_golden(example, update_goldens):
    result = compile_file(str(example), TARGETS)
    assert result.ok
    view = golden_view(result.artifacts)
    golden = ROOT / "golden" / example.stem
    if update_goldens:
        write_tree(golden, view)
    comparison = compare(golden, view)
    assert comparison.same, (f"golden/{example.stem} drifted (changed {comparison.changed}, missing "
                             f"{comparison.missing}, extra {comparison.extra}); if intended, rerun with "
                             f"--update-goldens and review the diff:\n"
                             + unified_diff(golden, view, comparison, limit=60))


def test_no_golden_without_an_example():
    assert sorted(p.name for p in (ROOT / "golden").iterdir() if p.is_dir()) == sorted(p.stem for p in EXAMPLES)


def test_cli_check_and_one_byte_edit(tmp_path):
    example = ROOT / "examples" / "single-node-colocated-ref.yaml"
    out = tmp_path / "out"
    assert areal("compile", str(example), "--out", str(out), "--target", "all").returncode == 0
    assert areal("compile", str(example), "--out", str(out), "--target", "all", "--check").returncode == 0
    target = out / "local" / "launch.json"
    target.write_bytes(target.read_bytes()[:-2] + b"x\n")
    result = areal("compile", str(example), "--out", str(out), "--target", "all", "--check")
    assert result.returncode == 1 and "local/launch.json" in result.stderr.decode()
