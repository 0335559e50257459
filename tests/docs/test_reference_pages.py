"""The generated reference pages (docs/reference/: the experiment format from the JSON Schema, the commands from
their help, the diagnostic codes) are what docs/generate.py writes from the code now: they cannot drift."""
from __future__ import annotations

import runpy

import pytest

from doc_blocks import ROOT

GENERATE = runpy.run_path(str(ROOT / "docs" / "generate.py"))


@pytest.mark.parametrize("name", sorted(GENERATE["pages"]()))
def test_the_committed_page_is_generated(name):
    committed = (ROOT / "docs" / "reference" / name).read_text(encoding="utf-8")
    assert committed == GENERATE["pages"]()[name], f"docs/reference/{name} is stale: run python docs/generate.py"


def test_every_command_and_code_is_in_the_reference():
    from areal_compiler.cli import main, _register_operator_verbs
    from areal_compiler.codes import CODES

    _register_operator_verbs()
    pages = GENERATE["pages"]()
    assert all(f"## areal {name}\n" in pages["commands.md"] for name in main.commands)
    assert all(f"| `{code}` |" in pages["codes.md"] for code in CODES)
