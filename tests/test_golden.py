"""golden/<example>/ holds exactly what `areal compile examples/<example>.yaml --out golden/<example>` writes.

Regenerate only on purpose: `pytest tests/test_golden.py --update-goldens` (or AREAL_UPDATE_GOLDENS=1)."""
from __future__ import annotations

import pytest

from helpers import EXAMPLES, ROOT, areal
from areal_compiler.output import compare, unified_diff, write_tree
from areal_compiler.pipeline import compile_file
from areal_compiler.targets import names as target_names

TARGETS = target_names()


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_golden(example, update_goldens):
    result = compile_file(str(example), TARGETS)
    assert result.ok
    golden = ROOT / "golden" / example.stem
    if update_goldens:
        write_tree(golden, result.artifacts)
    comparison = compare(golden, result.artifacts)
    assert comparison.same, (f"golden/{example.stem} drifted (changed {comparison.changed}, missing "
                             f"{comparison.missing}, extra {comparison.extra}); if intended, rerun with "
                             f"--update-goldens and review the diff:\n"
                             + unified_diff(golden, result.artifacts, comparison, limit=60))


def test_no_golden_without_an_example():
    assert sorted(p.name for p in (ROOT / "golden").iterdir() if p.is_dir()) == sorted(p.stem for p in EXAMPLES)


def test_cli_check_against_golden_and_one_byte_edit(tmp_path):
    import shutil

    stem = "single-node-colocated-ref"
    # goldens hold every target (test_golden), so check against all of them, not just the configured ones
    assert areal("compile", str(ROOT / "examples" / f"{stem}.yaml"), "--out", str(ROOT / "golden" / stem),
                 "--target", "all", "--check").returncode == 0
    copy = tmp_path / stem
    shutil.copytree(ROOT / "golden" / stem, copy)
    target = copy / "local" / "launch.json"
    target.write_bytes(target.read_bytes()[:-2] + b"x\n")
    result = areal("compile", str(ROOT / "examples" / f"{stem}.yaml"), "--out", str(copy), "--target", "all",
                   "--check")
    assert result.returncode == 1 and "local/launch.json" in result.stderr.decode()
