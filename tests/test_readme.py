"""The README says what is true (issues 24 and 28): it stays short, its two set-up commands are the ones people know,
the demo it installs runs from any directory, each target's one command works, it says how to install what the
Kubernetes verbs need, and the tests that skip without ../shared are named in the contributors' page."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from helpers import ROOT, areal

README = (ROOT / "README.md").read_text(encoding="utf-8")
CONTRIBUTING = (ROOT / "docs" / "contributing.md").read_text(encoding="utf-8")
SET_UP = ("python3 -m venv .venv && . .venv/bin/activate && pip install . && areal run examples/demo-cpu.yaml",
          "pip install '.[test]' && python -m pytest -q")
STUBS = {"sbatch": "#!/bin/sh\necho 'sbatch: Job 7 to start at 2030-01-01T00:00:00 using 8 processors' >&2\n",
         "sinfo": "#!/bin/sh\nprintf 'node1\\nnode2\\n'\n"}  # Slurm answering like a 2-node cluster
TARGETS = dict(re.findall(r"^\| (this machine|Slurm|Kubernetes|Ray) \| `(areal [^`]+)` \|", README, re.M))


def test_the_readme_is_short_and_opens_with_the_two_set_up_commands():
    assert len(README.splitlines()) <= 150
    first_block = README.split("```sh\n", 1)[1].split("```", 1)[0]
    assert [line for line in first_block.splitlines() if not line.startswith("#")] == list(SET_UP)


def test_the_readmes_links_lead_to_files():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    missing = [link for link in links if not (ROOT / link).is_file()]
    assert links and not missing, missing


def test_the_demo_runs_from_any_directory(tmp_path):
    """The set-up's `areal run examples/demo-cpu.yaml`, called from another folder with the file's path."""
    result = areal("run", str(ROOT / "examples" / "demo-cpu.yaml"), "--quiet", cwd=tmp_path,
                   env=dict(os.environ, AREAL_HOME=str(tmp_path / "home")), timeout=120)
    assert result.returncode == 0, result.stderr.decode()


def test_the_targets_table_has_one_command_for_each_target():
    assert sorted(TARGETS) == ["Kubernetes", "Ray", "Slurm", "this machine"]
    assert TARGETS["this machine"] == "areal run examples/demo-cpu.yaml"  # run by the docs' tour and set-up


def test_the_slurm_command_runs(tmp_path):
    """As a dry run against Slurm stand-ins (sbatch --test-only and sinfo); the Slurm page's block runs it on the
    real cluster."""
    for name, body in STUBS.items():
        (tmp_path / name).write_text(body)
        (tmp_path / name).chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}", AREAL_HOME=str(tmp_path / "home"))
    _, verb, file, *args = TARGETS["Slurm"].split()
    result = areal(verb, str(ROOT / file), *args, "--dry-run", env=env, timeout=120)
    assert result.returncode == 0, result.stderr.decode()


@pytest.mark.parametrize("target", ["Kubernetes", "Ray"])
def test_the_cluster_commands_name_a_file_that_compiles_for_their_target(target, tmp_path):
    """Submitting needs the cluster (the target pages' blocks run against the real ones); what the command names
    compiles for its target here."""
    words = TARGETS[target].split()
    file, chosen = words[2], words[words.index("--target") + 1]
    result = areal("compile", str(ROOT / file), "--target", chosen, "--out", str(tmp_path / "out"), timeout=120)
    assert result.returncode == 0, result.stderr.decode()


def test_submit_says_why_it_needs_a_target():
    result = areal("submit", str(ROOT / "examples" / "two-node-decoupled.yaml"))
    assert result.returncode == 2
    assert "configures 2 cluster targets (slurm, kubernetes): say which with --target" in result.stderr.decode()


def test_the_readme_says_how_to_install_the_kubernetes_client():
    """The install command the Kubernetes verbs name when the client is missing is the README's."""
    code = ("import sys; sys.modules['kubernetes'] = None\n"
            "from areal_compiler.runs.base import OperatorError\nfrom areal_compiler.runs.k8s_api import connect\n"
            "try:\n    connect()\nexcept OperatorError as exc:\n    print(exc.message)\n")
    message = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    install = re.search(r"pip install '[^']+'", message)
    assert install and install.group() in README, message


@pytest.mark.parametrize("test_file", sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").rglob("*.py")
                                             if re.search(r"(parent|parents\[\d\]) / \"shared\"",
                                                          p.read_text(encoding="utf-8"))))
def test_the_contributors_page_names_each_test_that_reads_the_shared_folder(test_file):
    assert test_file in CONTRIBUTING, f"{test_file} reads ../shared: docs/contributing.md must say it skips without it"
