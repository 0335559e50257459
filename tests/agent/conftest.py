"""Fixtures for the agent tests: agents started for a test are always stopped again.

Used by every test module in tests/agent."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from agent_helpers import start_agent, stop_agent  # noqa: E402


@pytest.fixture
def agents():
    """start(plan, "role/index", run_dir, ...) -> Popen; all of them are stopped at teardown."""
    started = []

    def start(*args, **kwargs):
        proc = start_agent(*args, **kwargs)
        started.append(proc)
        return proc
    yield start
    for proc in started:  # signal all first so their grace periods overlap
        if proc.poll() is None:
            proc.terminate()
    for proc in started:
        stop_agent(proc)
