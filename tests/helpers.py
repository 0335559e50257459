"""Shared test helpers: write an experiment, check it, run the CLI as a real process."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))

BASE = """\
experiment_name: exp
trial_name: t0
compute:
  accelerator: GPU_8xH100
  num_accelerators: 8
roles:
  rollout:
    backend: "sglang:d4"
    cmd: python3 -m rollout
  actor:
    backend: "fsdp:d4"
    cmd: python3 -m train
"""


def write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def located(path: Path) -> list[tuple[str, int, int]]:
    """(code, line, col) of every diagnostic of a file, as the validator reports them."""
    from areal_compiler.check import check_file

    return [(d.code, d.span.line if d.span else 0, d.span.col if d.span else 0)
            for d in check_file(str(path)).diagnostics]


def areal(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 60,
          input: bytes | None = None) -> subprocess.CompletedProcess:
    """Run the CLI as a real process (`python -m areal_compiler`), as a user would."""
    return subprocess.run([sys.executable, "-m", "areal_compiler", *args], cwd=cwd, env=env, capture_output=True,
                          timeout=timeout, input=input)


def engine_or_skip(found, engine: str):
    """The engine a finder returned as (thing, reason): skips without it on a developer's machine, but fails
    when AREAL_REQUIRE_<ENGINE>=1 (set by .ci/run), so an integration test can never silently skip in CI."""
    import pytest

    thing, reason = found
    if thing is None:
        flag = f"AREAL_REQUIRE_{engine.upper()}"
        if os.environ.get(flag) == "1":
            pytest.fail(f"{flag}=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    return thing


def find_areal_python() -> tuple[str | None, str]:
    """Upstream AReaL 1.0.4's venv python (tests/areal/setup.sh), from AREAL_UPSTREAM_PYTHON, as (python, "") or
    (None, why it is unusable)."""
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


def free_port_block(size: int, low: int = 32000, high: int = 60000) -> int:
    """The first of `size` consecutive ports in [low, high) that are free now (for a test's runtime.base_port)."""
    import random
    import socket

    for _ in range(50):
        base = random.randrange(low, high - size)
        try:
            for port in range(base, base + size):
                with socket.socket() as probe:
                    probe.bind(("0.0.0.0", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free block of ports")
