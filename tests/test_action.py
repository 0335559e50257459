"""The GitHub Action (action.yml): its steps run as GitHub runs them (bash -eo pipefail, inputs through the
environment) in a temporary git repository whose second commit changes an experiment; the job summary they write
is checked. One test runs the install step for real (pip installs this checkout into a fresh venv, whose `areal`
the next step then runs: what a wheel would miss, such as a template file, fails it); the others, to save that
half minute each, run it with a stand-in `python3` that records the pip command, and use this checkout's `areal`."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import ROOT

ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
EXAMPLE = (ROOT / "examples" / "two-node-decoupled.yaml").read_text()


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout


def areal(cwd: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "areal_compiler", *args], cwd=cwd, check=True, capture_output=True)


def test_inputs_reach_the_scripts_only_through_the_environment():
    assert set(ACTION["inputs"]) == {"files", "out", "layout", "targets", "base"}
    steps = ACTION["runs"]["steps"]
    assert ACTION["runs"]["using"] == "composite" and all(s["shell"] == "bash" for s in steps)
    assert not any("${{" in s["run"] for s in steps)  # an expression in a script is a script-injection hole


def expand(value: str, inputs: dict[str, str], action_path: Path = ROOT) -> str:
    """GitHub's `${{ inputs.X }}` and `${{ github.action_path }}` in a step's env."""
    def one(match: re.Match) -> str:
        name = match.group(1)
        if name == "github.action_path":
            return str(action_path)
        assert name.startswith("inputs."), name
        key = name.removeprefix("inputs.")
        return inputs.get(key, ACTION["inputs"][key].get("default", ""))
    return re.sub(r"\$\{\{\s*([\w.]+)\s*\}\}", one, value)


def run_action(repo: Path, tmp: Path, inputs: dict[str, str], python_bin: Path | None = None,
               **env: str) -> tuple[int, str]:
    """Every step in order, as a runner does; (exit status of the first failing step or 0, the job summary).
    PYTHON_BIN: a venv's bin folder first on every step's PATH, whose python3 installs for real from a copy of this
    checkout as GitHub checks an action out (no build/ or *.egg-info left by an earlier install, which pip would
    reuse); without it the install step's python3 is a stand-in that records its arguments."""
    action_path = ROOT
    if python_bin is not None:
        action_path = tmp / "action"
        shutil.copytree(ROOT, action_path, symlinks=True, ignore=shutil.ignore_patterns(
            ".git", ".venv*", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis", "out"))
    stand_in = tmp / "bin"
    stand_in.mkdir(exist_ok=True)
    (stand_in / "python3").write_text('#!/bin/sh\nprintf "%s\\n" "$*" > "$PIP_RECORD"\n')
    (stand_in / "python3").chmod(0o755)
    summary = tmp / "summary.md"
    summary.write_text("")
    base_env = {"PATH": f"{python_bin or Path(sys.executable).parent}:{os.environ['PATH']}", "HOME": str(tmp),
                "GITHUB_STEP_SUMMARY": str(summary), "PIP_RECORD": str(tmp / "pip"), **env}
    if python_bin is not None and "XDG_CACHE_HOME" not in env:  # HOME is a temporary folder: keep pip's cache
        base_env["XDG_CACHE_HOME"] = os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))
    for i, step in enumerate(ACTION["runs"]["steps"]):
        script = tmp / f"step{i}.sh"
        script.write_text(step["run"])
        step_env = {**base_env, **{k: expand(v, inputs, action_path) for k, v in step.get("env", {}).items()}}
        if i == 0 and python_bin is None:
            step_env["PATH"] = f"{stand_in}:{step_env['PATH']}"
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=repo,
                              env=step_env, capture_output=True, text=True, timeout=600)
        if done.returncode:
            return done.returncode, summary.read_text() + done.stderr
    if python_bin is None:
        assert (tmp / "pip").read_text() == f"-m pip install --quiet {ROOT}\n"
    return 0, summary.read_text()


@pytest.fixture
def pull_request(tmp_path):
    """origin (a bare repository) with main; a clone whose branch `change` raises the Slurm time limit, with the
    artifacts compiled again and committed, as a pull request would; origin/main is not fetched yet."""
    origin, repo = tmp_path / "origin.git", tmp_path / "repo"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(tmp_path, "clone", "-q", str(origin), str(repo))
    (repo / "experiments").mkdir()
    (repo / "experiments" / "grpo.yaml").write_text(EXAMPLE)
    areal(repo, "compile", "experiments/grpo.yaml", "--out", "compiled")
    git(repo, "checkout", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "an experiment")
    git(repo, "push", "-q", "origin", "main")
    git(repo, "checkout", "-q", "-b", "change")
    (repo / "experiments" / "grpo.yaml").write_text(EXAMPLE.replace('time: "48:00:00"', 'time: "72:00:00"'))
    areal(repo, "compile", "experiments/grpo.yaml", "--out", "compiled")
    git(repo, "commit", "-qam", "a longer time limit")
    git(repo, "update-ref", "-d", "refs/remotes/origin/main")  # a shallow checkout has no base branch
    return repo


def test_a_pull_request_gets_its_change_in_the_job_summary(pull_request, tmp_path):
    """With the install step for real: a fresh venv, this checkout installed by pip, its `areal` in the next step."""
    venv = tmp_path / "runner-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    status, summary = run_action(pull_request, tmp_path, {"files": "experiments/grpo.yaml"}, python_bin=venv / "bin",
                                 GITHUB_BASE_REF="main")
    assert status == 0, summary
    assert (venv / "bin" / "areal").exists()
    assert summary.startswith("#### `areal diff` experiments/grpo.yaml@origin/main → experiments/grpo.yaml")
    assert "**device-hours 768 (time limit 48:00:00) → 1152 (time limit 72:00:00); Slurm asked" in summary
    assert "| **job component rollout** | time | `48:00:00` | `72:00:00` |" in summary


def test_stale_artifacts_fail_the_step_and_say_so(pull_request, tmp_path):
    path = pull_request / "experiments" / "grpo.yaml"
    path.write_text(path.read_text().replace("partition: gpu", "partition: a100"))
    (pull_request / "other.yaml").write_text(EXAMPLE)
    status, summary = run_action(pull_request, tmp_path, {"files": "experiments/grpo.yaml\n other.yaml",
                                                          "base": "main"})
    assert status == 1
    assert "`areal compile --check`: the artifacts in compiled do not match the experiments;" in summary
    assert "| **job component rollout** | partition | `gpu` | `a100` |" in summary  # still summarized
    assert "`areal diff` other.yaml: no change to the job since main" not in summary
    assert "#### `areal diff` other.yaml@main → other.yaml" in summary and "new experiment (not in main)" in summary


def test_artifacts_committed_in_the_review_layout(pull_request, tmp_path):
    areal(pull_request, "compile", "experiments/grpo.yaml", "--out", "reviewed", "--layout", "review")
    inputs = {"files": "experiments/grpo.yaml", "out": "reviewed", "base": "HEAD"}
    assert run_action(pull_request, tmp_path, {**inputs, "layout": "review"})[0] == 0
    status, summary = run_action(pull_request, tmp_path, inputs)  # checked as a bundle, it is stale
    assert status == 1 and "--out reviewed --layout bundle`), commit them." in summary


def test_a_side_that_cannot_be_compared_is_reported_with_its_diagnostics(pull_request, tmp_path):
    path = pull_request / "experiments" / "grpo.yaml"
    path.write_text(path.read_text().replace('"fsdp:d8"', '"fsdp:d9"'))
    status, summary = run_action(pull_request, tmp_path, {"files": "experiments/grpo.yaml", "out": "",
                                                          "base": "main"})
    assert status == 1
    assert "`areal diff` experiments/grpo.yaml: cannot compare with main" in summary
    assert "experiments/grpo.yaml:" in summary and "error[" in summary


def test_unchanged_experiments_say_so(pull_request, tmp_path):
    status, summary = run_action(pull_request, tmp_path, {"files": "experiments/grpo.yaml", "base": "HEAD"})
    assert status == 0
    assert summary == "`areal diff` experiments/grpo.yaml: no change to the job since HEAD\n\n"


def gitlab_job() -> dict:
    """The GitLab CI job docs/ci-and-review.md documents (the yaml block under "### In GitLab CI")."""
    section = (ROOT / "docs" / "ci-and-review.md").read_text().split("### In GitLab CI", 1)[1]
    return yaml.safe_load(section.split("```yaml\n", 1)[1].split("```", 1)[0])["areal-review"]


def test_the_documented_gitlab_job_writes_the_markdown(pull_request, tmp_path):
    script = gitlab_job()["script"]
    assert script[0].startswith("pip install")  # installing is the runner's: this checkout is installed here
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "HOME": str(tmp_path),
           "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main"}
    # as GitLab runs them: the lines in one shell, which stops at the first that fails
    done = subprocess.run(["bash", "-eo", "pipefail", "-c", "\n".join(script[1:])], cwd=pull_request, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    markdown = (pull_request / "areal-diff.md").read_text()
    assert markdown.startswith("#### `areal diff` experiments/grpo.yaml@origin/main → experiments/grpo.yaml")
    assert gitlab_job()["artifacts"]["paths"] == ["areal-diff.md"]


def test_the_installed_package_carries_every_module():
    """The action installs this checkout with pip: every package folder must be listed in pyproject.toml."""
    listed = set(re.search(r"^packages = \[(.*)\]$", (ROOT / "pyproject.toml").read_text(), re.M).group(1)
                 .replace('"', "").replace(" ", "").split(","))
    folders = {"areal_compiler" + "".join(f".{p}" for p in init.parent.relative_to(ROOT / "compiler").parts)
               for init in (ROOT / "compiler").rglob("__init__.py")}
    assert folders <= listed
