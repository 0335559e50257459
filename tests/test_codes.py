"""One table of diagnostic codes: every code the compiler emits has one entry, and every entry is emitted."""
from __future__ import annotations

import re

from helpers import ROOT
from areal_compiler.codes import CODES
from areal_compiler.spec.allocation import CODES as GRAMMAR


def test_every_emitted_code_is_in_the_table_and_every_entry_is_emitted():
    emitted = set()
    for path in (ROOT / "compiler").rglob("*.py"):
        if path.name != "codes.py":
            emitted |= set(re.findall(r'"([EWA]\d{3})"', path.read_text(encoding="utf-8")))
    assert emitted == set(CODES) | set(GRAMMAR)


def test_the_commands_page_names_every_code_family():
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for family in ("E1xx", "E2xx", "A0xx", "E4xx", "W4xx"):
        assert family in page
