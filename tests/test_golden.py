"""golden/<example>/ holds `areal compile examples/<example>.yaml --target all --layout review`: the review layout
(the plan once, agent.pyz and the Ray launcher pinned by sha256 in every manifest.json, the ConfigMap's copy of
agent.pyz as its sha256), checked here through the public CLI exactly as a user's CI would check theirs.

Regenerate only on purpose: `pytest tests/test_golden.py --update-goldens` (or AREAL_UPDATE_GOLDENS=1)."""
from __future__ import annotations

import pytest

from helpers import EXAMPLES, ROOT, areal


def golden_command(example) -> list[str]:
    return ["compile", str(example), "--target", "all", "--layout", "review", "--out",
            str(ROOT / "golden" / example.stem)]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_golden(example, update_goldens):
    if update_goldens:
        written = areal(*golden_command(example))
        assert written.returncode == 0, written.stderr.decode()
    result = areal(*golden_command(example), "--check", "--diff")
    assert result.returncode == 0, (f"golden/{example.stem} drifted; if intended, rerun with --update-goldens and "
                                    f"review the diff:\n{result.stdout.decode()[:6000]}{result.stderr.decode()}")


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
