"""Fixtures for tests that submit to a REAL Ray head node (tests/ray/cluster.sh, started outside pytest).

    tests/ray/cluster.sh up      # before pytest (CI: .ci/run)
    pytest tests/ray
    tests/ray/cluster.sh down    # after, pass or fail

``ray_cluster`` finds it through ``${AREAL_RAY_DIR:-/tmp/areal-ray}/env.sh`` and checks that the Jobs API answers.
Without it the tests skip with the reason, unless ``AREAL_REQUIRE_RAY=1`` (set by .ci/run): then they fail."""
from __future__ import annotations

import json
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import engine_or_skip

DEFAULT_STATE_DIR = "/tmp/areal-ray"


@dataclass
class RayCluster:
    address: str  # the dashboard URL (Jobs REST API)
    python: str  # the Ray venv's python (never the project's)

    def get(self, path: str):
        with urllib.request.urlopen(self.address + path, timeout=10) as response:
            return json.load(response)


def _env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export "):].partition("=")
            out[key] = value.strip().strip('"')
    return out


def _find_cluster() -> tuple[RayCluster | None, str]:
    state_dir = Path(os.environ.get("AREAL_RAY_DIR", DEFAULT_STATE_DIR))
    env_sh, hint = state_dir / "env.sh", "start it with tests/ray/cluster.sh up"
    if not env_sh.is_file():
        return None, f"no Ray test cluster: {env_sh} missing ({hint})"
    env = _env_file(env_sh)
    if "AREAL_RAY_ADDRESS" not in env or "AREAL_RAY_PYTHON" not in env:
        return None, f"{env_sh} lacks AREAL_RAY_ADDRESS or AREAL_RAY_PYTHON ({hint})"
    cluster = RayCluster(env["AREAL_RAY_ADDRESS"], env["AREAL_RAY_PYTHON"])
    try:
        version = cluster.get("/api/version")["ray_version"]
    except (OSError, ValueError, KeyError) as exc:
        return None, f"the Ray Jobs API at {cluster.address} does not answer: {exc} ({hint})"
    if not version.startswith("2."):
        return None, f"the test cluster runs Ray {version}, not 2.x"
    return cluster, ""


@pytest.fixture(scope="session")
def ray_cluster() -> RayCluster:
    return engine_or_skip(_find_cluster(), "ray")
