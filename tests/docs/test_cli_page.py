"""docs/cli.md against the code: every verb of `areal` is in its table, the commands it says take `-o json` are those
that have the option, and the exit codes it lists are the program's."""
from __future__ import annotations

import re

from doc_blocks import ROOT

PAGE = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")


def commands():
    from areal_compiler.cli import _register_operator_verbs, main

    _register_operator_verbs()
    return main.commands


def test_every_verb_is_in_the_table():
    from areal_compiler.cli import UPSTREAM_GROUPS

    rows = "\n".join(line for line in PAGE.splitlines() if line.startswith("| `areal "))
    listed = set(re.findall(r"`areal (\w+)", rows)) | {name for group in re.findall(r"`areal ([\w\\|]+) ", rows)
                                                       for name in group.split("\\|")}
    assert set(commands()) | set(UPSTREAM_GROUPS) <= listed, sorted(set(commands()) - listed)


def test_the_commands_said_to_take_json_output_are_those_that_do():
    said = re.search(r"Every command that prints data \(([^)]*)\) takes `-o json`", PAGE.replace("\n", " "))
    assert said, "docs/cli.md no longer lists the commands that take -o json"
    listed = set(re.findall(r"`(\w+)`", said.group(1)))
    taking = {name for name, command in commands().items() if any(p.name == "output" for p in command.params)}
    assert listed == taking


def test_the_exit_codes_are_the_programs():
    from areal_compiler.cli import BROKEN_PIPE, INTERNAL_ERROR

    text = PAGE.replace("\n", " ")
    for code, what in ((0, "success"), (1, "invalid input"), (2, "usage error"), (INTERNAL_ERROR, "a bug in areal"),
                       (BROKEN_PIPE, "when the reader of its output went away")):
        assert f"{code} {what}" in text, (code, what)
