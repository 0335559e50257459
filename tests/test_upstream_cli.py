"""Our `areal` beside upstream AReaL 2.0's own `areal` CLI, installed in one venv in either order.

Upstream 2.0 is not on PyPI, so a small stand-in package plays it: the distribution `areal` with upstream's entry
point (`areal = areal.v2.cli.main:cli`), whose `train`, `inf` and `agent` echo their arguments and stdin, keep
state under $AREAL_HOME/<namespace>/ as upstream's NamespacedStateStore does, and exit with the code asked for."""
from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT

STANDIN_MAIN = '''\
import json, os, sys
from pathlib import Path


def cli():
    args = sys.argv[1:]
    if args == ["--version"]:
        print("areal, version 2.0.0.dev0 (stand-in)")
        return 0
    if args[:1] not in (["train"], ["inf"], ["agent"]):
        print("stand-in: usage: areal train|inf|agent ...", file=sys.stderr)
        return 2
    home = Path(os.environ.get("AREAL_HOME") or Path.home() / ".areal") / args[0]  # upstream's namespaces
    (home / "services").mkdir(parents=True, exist_ok=True)
    (home / "services" / "default.json").write_text(json.dumps({"argv": args}))
    print(json.dumps({"program": "stand-in", "argv0": os.path.basename(sys.argv[0]), "args": args,
                      "stdin": sys.stdin.read()}))
    sys.stdout.flush()
    return int(args[args.index("--exit") + 1]) if "--exit" in args else 0
'''
SITE_HOOK = "import site; site.addsitedir({!r})\n"  # this checkout and our dependencies, as the test runs them


def _wheel(tmp: Path, name: str, version: str, scripts: dict[str, str], files: dict[str, str]) -> Path:
    """A wheel pip installs like any other (no build step, no network): its files and console scripts."""
    import zipfile

    dist = f"{name.replace('-', '_')}-{version}"
    path = tmp / f"{dist}-py3-none-any.whl"
    info = {f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
            f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
                                       "Tag: py3-none-any\n",
            f"{dist}.dist-info/entry_points.txt": "[console_scripts]\n" + "".join(
                f"{k} = {v}\n" for k, v in scripts.items())}
    entries = {**files, **info}
    entries[f"{dist}.dist-info/RECORD"] = "".join(f"{n},,\n" for n in [*entries, f"{dist}.dist-info/RECORD"])
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in entries.items():
            archive.writestr(member, text)
    return path


def _standin(tmp: Path) -> Path:
    """Upstream AReaL 2.0 as a stand-in: the `areal` distribution with upstream's `areal` entry point."""
    files = {"areal/__init__.py": "", "areal/v2/__init__.py": "", "areal/v2/cli/__init__.py": "",
             "areal/v2/cli/main.py": STANDIN_MAIN}
    return _wheel(tmp, "areal", "2.0.0.dev0", {"areal": "areal.v2.cli.main:cli"}, files)


def _ours(tmp: Path) -> Path:
    """Ours: our distribution's console scripts, read from pyproject.toml, over this checkout's code."""
    import re

    section = (ROOT / "pyproject.toml").read_text().split("[project.scripts]")[1].split("\n[")[0]
    scripts = dict(re.findall(r'^([\w-]+) = "([^"]+)"', section, re.M))
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    hook = "".join(SITE_HOOK.format(p) for p in site.getsitepackages())
    return _wheel(tmp, "areal-compile", version, scripts, {"areal_compile_checkout.pth": hook})


def _venv(tmp: Path, order: list[str]) -> Path:
    """A fresh venv with the packages of `order` installed by pip one after the other (the last one's `areal`
    script wins, as in any environment)."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True,
                   timeout=300)
    wheels = {"ours": _ours(tmp), "upstream": _standin(tmp)}
    for name in order:
        subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                        "--no-deps", "--no-index", str(wheels[name])], check=True, capture_output=True, timeout=600)
    return venv


def _run(venv: Path, program: str, *args: str, home: Path, stdin: str = "") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AREAL_", "VIRTUAL_ENV"))}
    env.update(AREAL_HOME=str(home), PATH=f"{venv / 'bin'}:/usr/bin:/bin")
    return subprocess.run([str(venv / "bin" / program), *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.mark.parametrize("ours_last", [True, False], ids=["upstream-then-ours", "ours-then-upstream"])
def test_both_clis_in_one_venv(tmp_path, ours_last):
    venv = _venv(tmp_path, ["upstream", "ours"] if ours_last else ["ours", "upstream"])
    home = tmp_path / "home"
    # Whichever `areal` won, `areal train run ...` reaches upstream's CLI with its arguments, stdin and exit code.
    result = _run(venv, "areal", "train", "run", "--config", "c.yaml", "a.b=1", "--exit", "3", home=home,
                  stdin="from stdin")
    assert result.returncode == 3, result.stderr
    echoed = json.loads(result.stdout)
    assert echoed == {"program": "stand-in", "argv0": "areal", "stdin": "from stdin",
                      "args": ["train", "run", "--config", "c.yaml", "a.b=1", "--exit", "3"]}
    # Ours stays reachable as areal-compile, and says what is installed beside it.
    assert _run(venv, "areal-compile", "--help", home=home).returncode == 0
    version = _run(venv, "areal-compile", "--version", home=home).stdout
    assert "areal-compile 0.1.0" in version and "AReaL 2.0.0's schema" in version
    assert "upstream AReaL's CLI: areal 2.0.0.dev0 (areal.v2.cli.main:cli)" in version
    which = _run(venv, "areal", "--version", home=home).stdout
    assert ("areal-compile" in which) == ours_last and ("stand-in" in which) == (not ours_last)
    # State: upstream keeps $AREAL_HOME/<namespace>/, ours $AREAL_HOME/runs/; neither reads the other's.
    assert _run(venv, "areal", "inf", "ps", home=home).returncode == 0
    listed = _run(venv, "areal-compile", "ps", "-o", "json", home=home)
    assert listed.returncode == 0 and json.loads(listed.stdout)["data"] == {"runs": []}
    assert sorted(p.name for p in home.iterdir()) == ["inf", "train"] + (["runs"] if (home / "runs").exists() else [])


def test_without_upstream_the_groups_say_which_package_provides_them(tmp_path):
    venv = _venv(tmp_path, ["ours"])
    for group in ("train", "inf", "agent"):
        result = _run(venv, "areal", group, "run", home=tmp_path / "home")
        assert result.returncode == 2 and "upstream AReaL's own CLI" in result.stderr
        assert "`areal` package 2.0" in result.stderr and "Traceback" not in result.stderr
    assert "upstream AReaL's CLI: not installed" in _run(venv, "areal", "--version", home=tmp_path).stdout


def test_a_broken_upstream_cli_is_one_line_not_a_traceback(tmp_path):
    venv = _venv(tmp_path, ["upstream", "ours"])
    main = next((venv / "lib").glob("python*/site-packages/areal/v2/cli/main.py"))
    main.write_text("raise ImportError('torch is missing')\n")
    result = _run(venv, "areal", "train", "run", home=tmp_path / "home")
    assert result.returncode == 1 and "cannot be imported: ImportError: torch is missing" in result.stderr
    assert "Traceback" not in result.stderr


def test_upstream_state_namespaces_never_include_ours():
    """Upstream 2.0 writes $AREAL_HOME/<namespace>/ (areal/v2/cli/*/state.py); ours is $AREAL_HOME/runs/. Read
    from upstream's repository when it is at hand (a developer machine), else skipped."""
    import re

    repo = Path(os.environ.get("AREAL_UPSTREAM_REPO", "/work/.mirror/areal-project+AReaL/repo"))
    if not repo.exists():
        pytest.skip(f"no upstream AReaL repository at {repo} (set AREAL_UPSTREAM_REPO)")
    files = subprocess.run(["git", "-C", str(repo), "grep", "-h", "-E", "NAMESPACE = |NamespacedStateStore\\(\"",
                            "HEAD", "--", "areal/v2/cli"], capture_output=True, text=True, check=True).stdout
    namespaces = set(re.findall(r'NAMESPACE = "([^"]+)"', files)) | set(re.findall(r'StateStore\("([^"]+)"', files))
    assert namespaces and "runs" not in namespaces, namespaces
    from areal_compiler.runs.paths import areal_home, run_home

    assert run_home("e/t").parent.parent == areal_home() / "runs"
