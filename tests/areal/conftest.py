"""Fixtures for tests against real upstream AReaL 1.0.4, installed in a venv of its own by tests/areal/setup.sh.

`areal_python` is that venv's python, from AREAL_UPSTREAM_PYTHON. Without it the tests skip on a developer
machine, and fail when AREAL_REQUIRE_AREAL=1 (CI), so a broken AReaL set-up cannot pass silently."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from helpers import engine_or_skip

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def _find_areal_python() -> tuple[str | None, str]:
    python = os.environ.get("AREAL_UPSTREAM_PYTHON")
    hint = "install it with tests/areal/setup.sh VENV and set AREAL_UPSTREAM_PYTHON=VENV/bin/python"
    if not python:
        return None, f"AREAL_UPSTREAM_PYTHON is not set ({hint})"
    if not os.access(python, os.X_OK):
        return None, f"AREAL_UPSTREAM_PYTHON={python} is not an executable ({hint})"
    probe = subprocess.run([python, "-c", "import areal.api.alloc_mode, areal.version as v; print(v.__version__)"],
                           capture_output=True, text=True, timeout=300, check=False)
    if probe.returncode != 0:
        return None, f"{python} cannot import areal: {probe.stderr.strip()[-500:]} ({hint})"
    return python, ""


@pytest.fixture(scope="session")
def areal_python() -> str:
    return engine_or_skip(_find_areal_python(), "areal")


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

