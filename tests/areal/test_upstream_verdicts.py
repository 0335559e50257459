"""The verdicts the importer is held to (tests/importer/corpus_expectations.yaml, upstream_examples.yaml) are
upstream's own: its loader (tests/areal/upstream_loader.py) accepts exactly the files we compile and rejects the
others with the message our `why` quotes.

The corpus against the installed 1.0.4 wheel (keys 2.0 added, per the committed 2.0 tables, are retried without);
every file of upstream main's examples/ against main's own areal package when upstream's repository is at hand."""
from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
IMPORTER = HERE.parent / "importer"
CORPUS = HERE.parents[2] / "shared" / "corpus" / "areal"
REPO = Path(os.environ.get("AREAL_UPSTREAM_REPO", "/work/.mirror/areal-project+AReaL/repo"))


def ask(python: str, request: dict) -> list[dict]:
    proc = subprocess.run([python, str(HERE / "upstream_loader.py")], input=json.dumps(request), text=True,
                          capture_output=True, timeout=1800, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.rsplit("\nVERDICTS ", 1)[1])


def shape_class(data: dict) -> tuple[str, list[str]]:
    """The class the importer checks a file against without a training script, and the top-level keys it leaves
    to the script's own class (warnings, W510): the same in the oracle."""
    from areal_compiler.importers.config_class import config_class

    chosen = config_class(data, None)
    fields = chosen.tables.fields(chosen.name)
    return chosen.name, [k for k in data if k not in fields and k not in ("defaults", "launcher")]


def newer_keys() -> list[list[str]]:
    from areal_compiler.importers.upstream_schema import load

    new, old = load("2.0.0"), load("1.0.4")
    return [[cls, field] for cls in new.classes for field in new.fields(cls)
            if cls in old.classes and field not in old.fields(cls)]


def agrees(answer: dict, expected_compile: bool, why: str | None) -> str | None:
    if answer["ok"] is None:
        return answer["error"]
    if answer["ok"] != expected_compile:
        return f"upstream {'accepts' if answer['ok'] else 'rejects: ' + answer['error']}, expected the opposite"
    message = answer.get("error", "").split(": ", 1)[-1][:60]
    if not answer["ok"] and message.replace("GRPOConfig", "PPOConfig") not in (why or "").replace("GRPOConfig",
                                                                                                  "PPOConfig"):
        return f"upstream says {message!r}, `why` does not quote it"
    return None


def test_the_corpus_verdicts_are_the_1_0_4_loaders(areal_python):
    assert CORPUS.is_dir(), f"the shared corpus is missing: {CORPUS}"
    expected = yaml.safe_load((IMPORTER / "corpus_expectations.yaml").read_text())["files"]
    cases, names = [], sorted(expected)
    for name in names:
        data = yaml.safe_load((CORPUS / name).read_text())
        cls, drop = shape_class(data)
        assert cls != "RolloutOnlyConfig", name  # not an upstream class: no corpus file needs it
        cases.append({"path": str(CORPUS / name), "class": cls, "drop": ["defaults"], "extra": drop,
                      "newer": newer_keys()})
    answers = ask(areal_python, {"cases": cases})
    wrong = {}
    for name, answer in zip(names, answers):
        verdict = expected[name]
        hydra = "defaults" in yaml.safe_load((CORPUS / name).read_text())
        if hydra and not answer["ok"] and answer["error"].startswith("MissingMandatoryValue"):
            continue  # its `defaults` file (not in the corpus) holds the rest: W501 says we take it so
        problem = agrees(answer, verdict == "compile", None if verdict == "compile" else verdict["why"])
        if problem:
            wrong[name] = problem
    assert not wrong, json.dumps(wrong, indent=1)


@pytest.fixture(scope="module")
def upstream_main(tmp_path_factory) -> Path:
    if not REPO.exists():
        pytest.skip(f"no upstream AReaL repository at {REPO} (set AREAL_UPSTREAM_REPO)")
    root = tmp_path_factory.mktemp("areal-main")
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "HEAD", "areal", "examples"],
                             check=True, capture_output=True, timeout=600).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    return root


def test_upstream_examples_verdicts_are_mains_loaders(areal_python, upstream_main):
    expected = yaml.safe_load((IMPORTER / "upstream_examples.yaml").read_text())["files"]
    names, cases = sorted(expected), []
    for name in names:
        path = upstream_main / "examples" / name
        script = expected[name]["driver"]
        case = {"path": str(path), "hydra": True, "root": str(upstream_main)}
        if script:
            case["script"] = str(upstream_main / script)
        else:
            data = yaml.safe_load(path.read_text())
            case["class"], case["extra"] = shape_class(data) if isinstance(data, dict) and "experiment_name" in data \
                else ("PPOConfig", [])
        cases.append(case)
    answers = ask(areal_python, {"cases": cases, "areal_root": str(upstream_main)})
    wrong = {name: problem for name, answer in zip(names, answers)
             if (problem := agrees(answer, expected[name]["verdict"] == "compile", expected[name].get("why")))}
    assert not wrong, json.dumps(wrong, indent=1)
