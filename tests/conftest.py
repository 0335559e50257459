"""pytest options and fixtures shared by every test folder (the helpers live in helpers.py)."""
from __future__ import annotations

import os

import pytest

from helpers import engine_or_skip, find_areal_python


def pytest_addoption(parser):
    parser.addoption("--update-goldens", action="store_true",
                     help="Rewrite golden/ from the examples instead of comparing (also AREAL_UPDATE_GOLDENS=1).")


@pytest.fixture
def update_goldens(request) -> bool:
    return request.config.getoption("--update-goldens") or os.environ.get("AREAL_UPDATE_GOLDENS") == "1"


@pytest.fixture(scope="session")
def areal_python() -> str:
    """Upstream AReaL's venv python: skips without it on a developer machine, fails with AREAL_REQUIRE_AREAL=1."""
    return engine_or_skip(find_areal_python(), "areal")


@pytest.fixture(scope="session")
def tiny_sft(areal_python, tmp_path_factory):
    """A tiny causal LM and SFT data set made locally (tests/areal/make_tiny.py), shared by the training tests."""
    from upstream_training import make_tiny

    return make_tiny(areal_python, tmp_path_factory.mktemp("tiny"))
