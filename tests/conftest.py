"""pytest options and fixtures shared by every test folder (the helpers live in helpers.py)."""
from __future__ import annotations

import os

import pytest


def pytest_addoption(parser):
    parser.addoption("--update-goldens", action="store_true",
                     help="Rewrite golden/ from the examples instead of comparing (also AREAL_UPDATE_GOLDENS=1).")


@pytest.fixture
def update_goldens(request) -> bool:
    return request.config.getoption("--update-goldens") or os.environ.get("AREAL_UPDATE_GOLDENS") == "1"
