"""The docs-examples harness itself, on made-up pages: a block passes when its commands exit and print as shown, and
fails when an output line or an exit code changes; markers and blocks written against the convention are refused."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import doc_blocks
from doc_blocks import BlockError, blocks_of, run_block
from helpers import free_port_block

PAGE = """# A made-up page

<!-- docs-test: run -->
```console
$ areal validate examples/demo-cpu.yaml
1 file valid
$ areal validate missing.yaml  # exits 1
missing.yaml: error[E101]: ...
...
$ echo "run demo-cpu-trial0-5ae544fa took 3.2 s"
run demo-cpu-trial0-... took ... s
```
"""


def run(page: str, tmp_path: Path) -> list[str]:
    (block,) = blocks_of(Path("page.md"), page)
    return run_block(block, tmp_path, {})


def test_a_block_that_prints_and_exits_as_shown_passes(tmp_path):
    assert run(PAGE, tmp_path) == []


@pytest.mark.parametrize("change, complaint", [
    ("1 file valid", "printed other output"),  # the output changed: it now says "2 files valid"
    ("# exits 1", "exited 1, the docs say 2"),  # the exit code changed
    ("run demo-cpu-trial0-... took ... s", "printed other output"),  # a variable part must still match its line
])
def test_a_changed_output_or_exit_code_fails(tmp_path, change, complaint):
    changed = {"1 file valid": "2 files valid", "# exits 1": "# exits 2",
               "run demo-cpu-trial0-... took ... s": "run demo-cpu-trial1-... took ... s"}[change]
    problems = run(PAGE.replace(change, changed), tmp_path)
    assert len(problems) == 1 and complaint in problems[0], problems


def test_a_command_that_fails_unannounced_fails(tmp_path):
    problems = run("<!-- docs-test: run -->\n```sh\nareal validate missing.yaml\n```\n", tmp_path)
    assert len(problems) == 1 and "exited 1, the docs say 0" in problems[0]


def test_a_block_leaves_no_run_behind(tmp_path):
    """A block that starts a run and leaves it running (a worker that sleeps, on ports free now)."""
    (tmp_path / "sleeper.yaml").write_text(f"""\
experiment_name: sleeper
trial_name: t0
compute: {{accelerator: CPU, num_accelerators: 0}}
fileroot: {tmp_path / "root"}
roles:
  sleeper: {{replicas: 1, cmd: "python3 -c 'import time; time.sleep(600)'", readiness: none}}
runtime: {{base_port: {free_port_block(8)}, grace_period: 1}}
""", encoding="utf-8")
    page = "<!-- docs-test: run -->\n```sh\nareal start sleeper.yaml\n```\n"
    assert run(page, tmp_path) == []
    listing = doc_blocks.subprocess.run(["areal", "ps", "-o", "json"], env=doc_blocks.environment(tmp_path, {}),
                                        capture_output=True, text=True, cwd=tmp_path)
    assert '"runs": []' in listing.stdout.replace("\n", "").replace("  ", ""), listing.stdout


@pytest.mark.parametrize("page, message", [
    ("```sh\nareal validate x.yaml\n```\n", "without a `<!-- docs-test: run -->`"),
    ("<!-- docs-test: skip -->\n```sh\nareal plan x.yaml\n```\n", "needs a reason"),
    ("<!-- docs-test: run slurrm -->\n```sh\nareal plan x.yaml\n```\n", "unknown word `slurrm`"),
    ("<!-- docs-test: run -->\n```console\n1 file valid\n```\n", "output before the first `$ ` command"),
    ("```text\nareal validate x.yaml\n```\n", "commands in a `text` block"),
    ("<!-- docs-test: run -->\n```sh\nareal plan \\\n```\n", "ends with a backslash"),
])
def test_blocks_against_the_convention_are_refused(page, message):
    with pytest.raises(BlockError, match=re.escape(message)):
        blocks_of(Path("page.md"), page)


def test_matching_allows_marked_variable_parts_only():
    assert doc_blocks.matches(["took ... s", "...", "done"], ["took 3.2 s", "a", "b", "done"])
    assert doc_blocks.matches(["...", "done"], ["done"])
    assert not doc_blocks.matches(["took ... s", "done"], ["took 3.2 s", "extra", "done"])
    assert not doc_blocks.matches(["done"], ["done", "more"])


def test_a_shown_file_that_differs_fails(tmp_path):
    page = ("<!-- docs-test: file examples/site/cluster.sbatch.j2 -->\n```jinja\n"
            + (doc_blocks.ROOT / "examples" / "site" / "cluster.sbatch.j2").read_text(encoding="utf-8") + "```\n")
    (shown,) = doc_blocks.shown_of(Path("page.md"), page)
    assert doc_blocks.check_shown(shown, tmp_path) == []
    (changed,) = doc_blocks.shown_of(Path("page.md"), page.replace("NCCL_DEBUG=WARN", "NCCL_DEBUG=INFO"))
    assert "differs from examples/site/cluster.sbatch.j2" in doc_blocks.check_shown(changed, tmp_path)[0]


def test_a_shown_experiment_must_validate(tmp_path):
    page = "<!-- docs-test: experiment -->\n```yaml\n{}\n```\n".format(
        (doc_blocks.ROOT / "examples" / "demo-cpu.yaml").read_text(encoding="utf-8").rstrip("\n"))
    (shown,) = doc_blocks.shown_of(Path("page.md"), page)
    assert doc_blocks.check_shown(shown, tmp_path) == []
    (broken,) = doc_blocks.shown_of(Path("page.md"), page.replace("num_accelerators: 0", "num_accelerators: -1"))
    assert "not a valid experiment" in doc_blocks.check_shown(broken, tmp_path)[0]
