"""The docs tests' hook: the counts of command blocks run and marked not runnable, printed at the end.

Used by test_doc_examples.py; the counts go to pytest's summary (so CI's log says how many blocks ran)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_terminal_summary(terminalreporter):
    from doc_blocks import COUNTS, all_blocks

    if COUNTS["run"] or COUNTS["files"]:  # the blocks were read without error
        COUNTS["skipped"] = sum(not block.run for block in all_blocks())
        terminalreporter.write_line(f"docs command blocks: {COUNTS['run']} run ({COUNTS['engine']} of them against "
                                    f"a real engine), {COUNTS['skipped']} marked not runnable; "
                                    f"{COUNTS['files']} shown files checked")
