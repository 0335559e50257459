"""agent.pyz: reproducible bytes, a full supervise round-trip under `python3 -I`, stdlib-only agent sources.

Run by pytest; builds the bundle with compiler/bundle.py into tmp_path."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import areal_compiler.agent
from agent_helpers import PY, make_plan, read_state, script, worker
from areal_compiler.bundle import agent_bundle, agent_sha256

AGENT_DIR = Path(areal_compiler.agent.__file__).resolve().parent
SOURCES = sorted(AGENT_DIR.glob("*.py"))
UPSTREAM = sorted((AGENT_DIR.parent / "upstream").glob("*.py"))


def test_bundle_is_byte_identical_across_calls_and_hash_seeds(tmp_path):
    first = agent_bundle()
    assert first == agent_bundle()
    code = "from areal_compiler.bundle import agent_sha256; print(agent_sha256())"
    digests = {subprocess.run([PY, "-c", code], env=dict(os.environ, PYTHONHASHSEED=seed), capture_output=True,
                              text=True, check=True).stdout.strip() for seed in ("0", "1", "4242")}
    assert digests == {agent_sha256()}
    (tmp_path / "agent.pyz").write_bytes(first)
    with zipfile.ZipFile(tmp_path / "agent.pyz") as archive:
        infos = archive.infolist()
    names = [i.filename for i in infos]
    assert names[0] == "__main__.py" and names[1:] == sorted(names[1:])
    assert names[1:] == ["areal_agent/%s" % p.name for p in SOURCES] + ["areal_upstream/%s" % p.name for p in UPSTREAM]
    assert all(i.date_time == (1980, 1, 1, 0, 0, 0) and i.external_attr >> 16 == 0o100644 for i in infos)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_zipapp_supervises_under_isolated_mode(tmp_path, agents):
    pyz = tmp_path / "agent.pyz"
    pyz.write_bytes(agent_bundle())
    body = "import os, sys; print('ünïcode', os.environ['AREAL_AGENT_URL']); sys.exit(5)"
    plan = make_plan(tmp_path / "plan.json", [worker("wörker", 0, script(body))])
    run = tmp_path / "run"
    proc = agents(plan, "wörker/0", run, log=tmp_path / "w.log", launcher=[PY, "-I", str(pyz)])
    assert proc.wait(20) == 5
    assert read_state(run, "wörker", 0)["status"] == "failed"
    assert "ünïcode http://127.0.0.1:" in (tmp_path / "w.log").read_text(encoding="utf-8")
    status = subprocess.run([PY, "-I", str(pyz), "status", "--run-dir", str(run), "--json"],
                            capture_output=True, text=True, check=True, timeout=30)
    envelope = json.loads(status.stdout)
    assert envelope["v"] == 1 and envelope["data"]["workers"][0]["status"] == "failed"
    assert envelope["data"]["workers"][0]["exit_code"] == 5


def _imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield 0, alias.name
        elif isinstance(node, ast.ImportFrom):
            yield node.level, node.module or ""


def test_agent_imports_only_the_stdlib_and_itself():
    local = {p.stem for p in SOURCES}
    for path in SOURCES:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path), feature_version=(3, 9))
        for level, module in _imports(tree):
            if level:
                assert level == 1 and (module == "" or module.split(".")[0] in local), (path.name, module)
            else:
                top = module.split(".")[0]
                assert top in sys.stdlib_module_names or top == "__future__", (path.name, module)
        assert len(tree.body) == 1 or "from __future__ import annotations" in source, path.name
        assert ast.get_docstring(tree) and len(ast.get_docstring(tree).splitlines()) >= 2, path.name
        assert not any(isinstance(n, getattr(ast, "Match", ())) for n in ast.walk(tree)), path.name


def test_an_upstream_driver_runs_through_the_bundled_planned_scheduler(tmp_path, agents):
    """A driver with upstream: areal: its agent runs `python agent.pyz run-trainer SCRIPT ARGS` (the same
    interpreter), with the script's folder first on sys.path, the trainer hook installed, and the plan file and node
    hosts in its environment."""
    pyz = tmp_path / "agent.pyz"
    pyz.write_bytes(agent_bundle())
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "train.py").write_text(
        "import json, os, sys\n"
        "print(json.dumps({'argv': sys.argv, 'path0': sys.path[0], 'hook': 'areal_upstream.run_trainer' in "
        "sys.modules, 'plan': os.environ['AREAL_PLAN_FILE'], 'hosts': os.environ['AREAL_NODE_HOSTS']}))\n",
        encoding="utf-8")
    plan_path = make_plan(tmp_path / "plan.json", [worker("driver", 0, [PY, str(folder / "train.py"), "--config",
                                                                         "c.yaml"])])
    plan = json.loads(plan_path.read_text(encoding="utf-8"))
    plan["roles"]["driver"].update(kind="driver", upstream="areal")
    plan_path.write_text(json.dumps(plan), encoding="utf-8")
    run = tmp_path / "run"
    proc = agents(plan_path, "driver/0", run, log=tmp_path / "d.log", launcher=[PY, "-I", str(pyz)])
    assert proc.wait(30) == 0, (tmp_path / "d.log").read_text(encoding="utf-8")
    seen = json.loads((tmp_path / "d.log").read_text(encoding="utf-8").splitlines()[-1])
    assert seen == {"argv": [str(folder / "train.py"), "--config", "c.yaml"], "path0": str(folder), "hook": True,
                    "plan": str(plan_path), "hosts": "127.0.0.1"}


def test_an_upstream_driver_needs_the_bundle(tmp_path, agents):
    plan_path = make_plan(tmp_path / "plan.json", [worker("driver", 0, [PY, "train.py"])])
    plan = json.loads(plan_path.read_text(encoding="utf-8"))
    plan["roles"]["driver"].update(kind="driver", upstream="areal")
    plan_path.write_text(json.dumps(plan), encoding="utf-8")
    proc = agents(plan_path, "driver/0", tmp_path / "run", log=tmp_path / "d.log")  # the agent's package, no pyz
    assert proc.wait(30) == 2
