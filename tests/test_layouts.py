"""`areal compile --layout review` against the bundle layout of the same compile, and what the review layout is
refused for (run, start, submit), through the CLI."""
from __future__ import annotations

import base64
import hashlib
import json

import pytest

from helpers import EXAMPLES, ROOT, areal

TWO_NODE = ROOT / "examples" / "two-node-decoupled.yaml"


def tree(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_review_is_the_bundle_with_the_plan_once_and_shipped_files_pinned(tmp_path, example):
    for layout in ("bundle", "review"):
        done = areal("compile", str(example), "--target", "all", "--layout", layout, "--out", str(tmp_path / layout))
        assert done.returncode == 0, done.stderr.decode()
    bundle, review = tree(tmp_path / "bundle"), tree(tmp_path / "review")
    plans = {content for rel, content in bundle.items() if rel.endswith("/plan.json")}
    assert plans == {review["plan.json"]}
    shipped = {"agent.pyz", "launcher.py"}
    kept = {rel for rel in bundle if rel.rpartition("/")[2] not in shipped | {"plan.json"}}
    assert set(review) == kept | {"plan.json"}
    agent = bundle["local/agent.pyz"]
    for rel in kept:
        expected = bundle[rel].replace(base64.b64encode(agent),
                                       b"sha256:" + hashlib.sha256(agent).hexdigest().encode())
        assert review[rel] == expected, rel
        if rel.endswith("/manifest.json"):  # the manifest pins every shipped file the bundle carries
            files = json.loads(review[rel])["files"]
            folder = rel.rpartition("/")[0]
            for name in shipped & set(files):
                assert files[name] == hashlib.sha256(bundle[f"{folder}/{name}"]).hexdigest()
    configmap = review["kubernetes/configmap.yaml"].decode()
    assert f"  agent.pyz: sha256:{hashlib.sha256(agent).hexdigest()}\n" in configmap
    assert len(configmap) < len(bundle["kubernetes/configmap.yaml"]) - len(agent)


def test_review_check_diff_and_several_inputs(tmp_path):
    out = tmp_path / "review"
    args = ["compile", str(TWO_NODE), "--target", "all", "--layout", "review", "--out", str(out)]
    assert areal(*args).returncode == 0
    assert areal(*args, "--check").returncode == 0
    assert areal("compile", str(TWO_NODE), "--target", "all", "--out", str(out), "--check").returncode == 1
    sbatch = out / "slurm" / "job.sbatch"
    sbatch.write_bytes(sbatch.read_bytes().replace(b"set -euo pipefail", b"set -eu"))
    stale = areal(*args, "--check", "--diff")
    assert stale.returncode == 1
    assert "-set -eu\n+set -euo pipefail" in stale.stdout.decode()
    assert "run `areal compile --layout review` to update" in stale.stderr.decode()
    several = areal("compile", str(TWO_NODE), str(ROOT / "examples" / "cpu-dev.yaml"), "--layout", "review",
                    "--out", str(tmp_path / "several"))
    assert several.returncode == 0
    assert {p.name for p in (tmp_path / "several").iterdir()} == {".areal-compile", "two-node-decoupled", "cpu-dev"}
    assert (tmp_path / "several" / "cpu-dev" / "plan.json").is_file()
    assert not list((tmp_path / "several").rglob("agent.pyz"))


@pytest.mark.parametrize("verb", [["run"], ["start"], ["submit"], ["submit", "--target", "slurm"]])
def test_run_start_submit_refuse_the_review_layout(tmp_path, verb):
    out = tmp_path / "review"
    assert areal("compile", str(TWO_NODE), "--target", "all", "--layout", "review", "--out", str(out)).returncode == 0
    folder = out if "--target" in verb else out / ("slurm" if verb[0] == "submit" else "local")
    result = areal(*verb, str(folder), env={"AREAL_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    message = result.stderr.decode()
    assert "--layout review" in message and "--layout bundle" in message, message
    assert not (tmp_path / "home").exists() or not list((tmp_path / "home").rglob("*.json"))
