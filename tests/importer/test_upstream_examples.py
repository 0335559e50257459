"""Every YAML file under upstream AReaL main's examples/ gets upstream's verdict, compiled as a user would (its node's
accelerator, --driver naming the script that loads it, from the examples' own folder): no traceback, no exit 70.

Needs upstream's repository (a git snapshot: AREAL_UPSTREAM_REPO, default /work/.mirror/areal-project+AReaL/repo);
skipped without it (this project's CI machine has it; ../shared/corpus/areal/, which test_corpus.py covers, is
all a machine without it checks)."""
from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections import Counter
from pathlib import Path

import pytest
import yaml

from helpers import ROOT
from imp_helpers import user_accelerator

REPO = Path(os.environ.get("AREAL_UPSTREAM_REPO", "/work/.mirror/areal-project+AReaL/repo"))
EXPECTED = yaml.safe_load((Path(__file__).parent / "upstream_examples.yaml").read_text())["files"]
pytestmark = pytest.mark.skipif(not REPO.exists(), reason=f"no upstream AReaL repository at {REPO}")


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """upstream's examples/ at HEAD, as files (the snapshot has no work tree); its scripts are read, never run."""
    root = tmp_path_factory.mktemp("areal-main")
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "HEAD", "examples"],
                             check=True, capture_output=True, timeout=300).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    return root


def test_expectations_cover_exactly_upstreams_examples(checkout):
    found = sorted(str(p.relative_to(checkout / "examples")) for p in (checkout / "examples").rglob("*.yaml"))
    assert found == sorted(EXPECTED)


def test_the_docs_count_the_verdicts():
    compiled = sum(v["verdict"] == "compile" for v in EXPECTED.values())
    row = f"| upstream main's `examples/` | {len(EXPECTED)} | {compiled} | {len(EXPECTED) - compiled} |"
    assert row in (ROOT / "docs" / "running-areal.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_upstream_example(checkout, name, monkeypatch):
    from areal_compiler.importers.options import CURRENT, ImportOptions
    from areal_compiler.pipeline import compile_file

    expected, path = EXPECTED[name], checkout / "examples" / name
    monkeypatch.chdir(checkout)  # upstream's commands run from its checkout: `python3 examples/.../train.py`
    driver = f"python3 {expected['driver']}" if expected["driver"] else None
    token = CURRENT.set(ImportOptions(accelerator=user_accelerator(path.read_text(), name), driver=driver))
    try:
        result = compile_file(str(path), ("local", "slurm", "ray"))  # a traceback fails the test
    finally:
        CURRENT.reset(token)
    report = "\n".join(d.render() for d in result.diagnostics)
    assert not [d for d in result.diagnostics if d.code == "W512"], report  # the driver's class was read
    if expected["verdict"] == "compile":
        assert result.ok, report
        assert result.artifacts["local/areal-config.yaml"].content == path.read_bytes()
    else:
        errors = [[d.code, d.span.line if d.span else 0, d.span.col if d.span else 0]
                  for d in result.diagnostics if d.is_error]
        assert errors == expected["verdict"], report


def test_the_corpus_gets_the_same_verdicts():
    """The corpus files are upstream examples too (named <folder>__<file>.yaml): both lists agree on each."""
    corpus = yaml.safe_load((Path(__file__).parent / "corpus_expectations.yaml").read_text())["files"]
    verdicts = Counter()
    for name, expected in corpus.items():
        example = EXPECTED[name.replace("__", "/")]
        verdicts[expected == "compile"] += 1
        assert (expected == "compile") == (example["verdict"] == "compile"), name
    assert verdicts[True] and verdicts[False]
