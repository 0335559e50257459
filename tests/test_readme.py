"""The README says what is true (issue 24 item 17): its Slurm example command runs, it says how to install what the
Kubernetes verbs need, and it names the tests that skip without ../shared."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from helpers import ROOT, areal

README = (ROOT / "README.md").read_text(encoding="utf-8")
STUBS = {"sbatch": "#!/bin/sh\necho 'sbatch: Job 7 to start at 2030-01-01T00:00:00 using 8 processors' >&2\n",
         "sinfo": "#!/bin/sh\nprintf 'node1\\nnode2\\n'\n"}  # Slurm answering like a 2-node cluster


def test_the_readmes_submit_examples_run(tmp_path):
    """Every `areal submit examples/...` line of the README naming one of this repository's examples (others run in
    an AReaL checkout), as a dry run against Slurm stand-ins (sbatch --test-only and sinfo; Ray's needs its head
    node: tests/ray), exits 0."""
    for name, body in STUBS.items():
        (tmp_path / name).write_text(body)
        (tmp_path / name).chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}", AREAL_HOME=str(tmp_path / "home"))
    lines = re.findall(r"^areal submit (examples/\S+)([^#\n]*)", README, re.M)
    commands = [(file, args.replace("[--dry-run]", "").split()) for file, args in lines
                if "--address" not in args and (ROOT / file).is_file()]
    assert commands, "the README shows no `areal submit examples/...` command"
    for file, args in commands:
        result = areal("submit", str(ROOT / file), *args, "--dry-run", env=env, timeout=120)
        assert result.returncode == 0, (file, args, result.stderr.decode())


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
def test_the_readme_names_each_test_that_reads_the_shared_folder(test_file):
    assert test_file in README, f"{test_file} reads ../shared: the README must say it skips without it"
