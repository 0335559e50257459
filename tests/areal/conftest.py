"""Fixtures for tests against real upstream AReaL 1.0.4, installed in a venv of its own by tests/areal/setup.sh.

`areal_python` (tests/conftest.py) is that venv's python, from AREAL_UPSTREAM_PYTHON. Without it the tests skip on a
developer machine, and fail when AREAL_REQUIRE_AREAL=1 (CI), so a broken AReaL set-up cannot pass silently."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def upstream(areal_python):
    """Ask upstream about a whole batch at once: upstream({"parse": [...], "gate": [...]}) -> its answers."""
    def ask(request: dict) -> dict:
        proc = subprocess.run([areal_python, str(HERE / "upstream_oracle.py")], input=json.dumps(request),
                              capture_output=True, text=True, timeout=900, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"upstream oracle exited {proc.returncode}: {proc.stderr[-2000:]}")
        return json.loads(proc.stdout)
    return ask

