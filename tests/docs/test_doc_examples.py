"""Every command block of the README and docs/ (issue 28): runnable ones run in a temporary folder with the examples
and must exit and print as shown; the rest are marked not runnable with a reason, and the README says how many.

Blocks needing Slurm, Ray or Kubernetes run against the real engines .ci/run starts: without one a block skips here,
and fails in CI (AREAL_REQUIRE_<ENGINE>=1). The convention: docs/contributing.md, "Command blocks in the docs"."""
from __future__ import annotations

import re

import pytest

import doc_blocks
from engines import find_engine
from doc_blocks import COUNTS
from helpers import engine_or_skip

BLOCKS = doc_blocks.all_blocks()


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.run], ids=lambda b: b.where)
def test_block_runs_as_shown(block, tmp_path):
    engines = {name: engine_or_skip(find_engine(name), name) for name in block.engines}
    if block.setup == "areal-checkout":
        engine_or_skip((doc_blocks.CORPUS if doc_blocks.CORPUS.is_dir() else None,
                        f"{doc_blocks.CORPUS} is missing (the project's shared folder)"), "corpus")
    problems = doc_blocks.run_block(block, tmp_path, engines)
    assert not problems, "\n\n".join(problems)
    COUNTS["run"] += 1
    COUNTS["engine"] += bool(block.engines)


@pytest.mark.parametrize("shown", doc_blocks.all_shown(), ids=lambda s: s.where)
def test_a_shown_file_is_the_file(shown, tmp_path):
    problems = doc_blocks.check_shown(shown, tmp_path)
    assert not problems, "\n\n".join(problems)
    COUNTS["files"] += 1


def test_blocks_not_run_say_why():
    skipped = [b for b in BLOCKS if not b.run]
    assert all(b.reason for b in skipped)


def test_the_readme_counts_the_blocks():
    readme = (doc_blocks.ROOT / "README.md").read_text(encoding="utf-8")
    run = sum(b.run for b in BLOCKS)
    counted = re.search(r"(\d+) of them run in CI\b.*?\band (\d+) are marked not runnable", readme, re.S)
    assert counted, "the README does not say how many command blocks run"
    assert (int(counted.group(1)), int(counted.group(2))) == (run, len(BLOCKS) - run)
