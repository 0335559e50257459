"""Every real upstream config in ../shared/corpus/areal/ compiles for every target or fails as upstream itself does.

Expectations live in corpus_expectations.yaml; the folder is optional on a developer machine (skipped when absent)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from helpers import ROOT, areal
from imp_helpers import user_accelerator

CORPUS = ROOT.parent / "shared" / "corpus" / "areal"
EXPECTED = yaml.safe_load((Path(__file__).parent / "corpus_expectations.yaml").read_text())["files"]
NAMES = sorted(p.name for p in CORPUS.glob("*.yaml")) if CORPUS.is_dir() else []
if not CORPUS.is_dir() and os.environ.get("AREAL_REQUIRE_CORPUS") == "1":  # CI: a missing corpus must fail
    raise RuntimeError(f"AREAL_REQUIRE_CORPUS=1 but there is no upstream corpus at {CORPUS}")
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"no upstream corpus at {CORPUS}")


# Every target an upstream config can express: Kubernetes needs a container image, which upstream configs do not
# name (an overlay with `image:` adds it; tests/importer/test_import_cli.py covers that path).
EXPRESSIBLE = ("local", "slurm", "ray")


def test_expectations_cover_exactly_the_corpus():
    assert sorted(EXPECTED) == NAMES


def test_the_docs_count_the_corpus_verdicts():
    compiled = sum(v == "compile" for v in EXPECTED.values())
    row = f"| `../shared/corpus/areal/` | {len(EXPECTED)} | {compiled} | {len(EXPECTED) - compiled} |"
    assert row in (ROOT / "docs" / "running-areal.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", NAMES)
def test_corpus_file(name):
    """Compiled with the accelerator a user would pass; every rejection is upstream's own (`why`)."""
    from areal_compiler.importers.options import CURRENT, ImportOptions
    from areal_compiler.pipeline import compile_file

    token = CURRENT.set(ImportOptions(accelerator=user_accelerator((CORPUS / name).read_text(), name)))
    try:
        result = compile_file(str(CORPUS / name), EXPRESSIBLE)  # a traceback fails the test
    finally:
        CURRENT.reset(token)
    errors = [[d.code, d.span.line if d.span else 0, d.span.col if d.span else 0]
              for d in result.diagnostics if d.is_error]
    expected = EXPECTED[name]
    if expected == "compile":
        assert result.ok, "\n".join(d.render() for d in result.diagnostics)
        original = (CORPUS / name).read_bytes()
        for target in EXPRESSIBLE:
            assert result.artifacts[f"{target}/areal-config.yaml"].content == original
    else:
        assert errors == expected["errors"], "\n".join(d.render() for d in result.diagnostics)


def test_gsm8k_grpo_plan_matches_upstream(tmp_path):
    """Acceptance: 4 rollout and 4 actor devices on one 8-device node, and no ref (kl_ctl is 0)."""
    result = areal("plan", str(CORPUS / "math__gsm8k_grpo.yaml"), "-o", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    plan = json.loads(result.stdout)["data"]
    assert plan["nodes"] == 1 and plan["accelerator"]["devices_per_node"] == 8
    devices = {role: sorted(d for w in plan["workers"] if w["role"] == role for d in w["devices"])
               for role in ("rollout", "actor")}
    assert len(devices["rollout"]) == 4 and len(devices["actor"]) == 4
    assert sorted(devices["rollout"] + devices["actor"]) == list(range(8))
    assert "ref" not in plan["roles"] and not any(w["role"] == "ref" for w in plan["workers"])
    text = areal("plan", str(CORPUS / "math__gsm8k_grpo.yaml"), cwd=tmp_path).stdout.decode()
    assert "1 node(s) x 8 devices" in text and "ref" not in text.split()


def test_the_gsm8k_example_launches_what_upstreams_config_does(tmp_path):
    """examples/areal-gsm8k-grpo.yaml, written in our format, plans exactly what importing upstream's own
    examples/math/gsm8k_grpo.yaml does: the same roles, commands, arguments contract, resources, placement, ports,
    staleness, fileroot and upstream names; only the driver's --config differs (the original path vs the copy), and
    the image, which upstream configs do not name, comes from an overlay."""
    driver, example = "python3 examples/math/gsm8k_rl.py", ROOT / "examples" / "areal-gsm8k-grpo.yaml"
    ours = json.loads(areal("plan", str(example), "-o", "json", cwd=tmp_path).stdout)["data"]
    image = tmp_path / "image.yaml"  # upstream configs name no container image; the example does
    image.write_text("image: " + yaml.safe_load(example.read_text())["image"] + "\n")
    result = areal("plan", str(CORPUS / "math__gsm8k_grpo.yaml"), "--accelerator", "GPU_8xANY", "--driver", driver,
                   "--overlay", str(image), "-o", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    imported = json.loads(result.stdout)["data"]
    assert ours["roles"].pop("driver")["argv"] == [*driver.split(), "--config", "examples/math/gsm8k_grpo.yaml"]
    assert imported["roles"].pop("driver")["argv"] == [*driver.split(), "--config", "areal-config.yaml"]
    for key in ("roles", "workers", "accelerator", "nodes", "fileroot", "areal", "gate", "completion", "runtime"):
        assert ours[key] == imported[key], key
