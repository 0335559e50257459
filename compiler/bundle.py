"""Builds agent.pyz, the runtime agent as one reproducible zipapp (same bytes on every machine).

It carries two packages: the agent (stdlib only, areal_agent/) and, beside it, the planned scheduler for upstream
AReaL's controller (areal_upstream/, which imports `areal` only in the driver that runs it: `python agent.pyz
run-trainer SCRIPT ARGS`). Called by the targets that write `agent.pyz` into every output folder, and by tests."""
from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

AGENT_DIR = Path(__file__).resolve().parent / "agent"
UPSTREAM_DIR = Path(__file__).resolve().parent / "upstream"
PACKAGE = "areal_agent"  # the agent's package name inside the zipapp
UPSTREAM = "areal_upstream"  # the planned scheduler's
SHEBANG = b"#!/usr/bin/env python3\n"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
LAUNCHER = (
    '"""agent.pyz entry point: the areal runtime agent (python3 -I agent.pyz --help), or with `run-trainer` an\n'
    'upstream AReaL training script on the planned scheduler (python agent.pyz run-trainer SCRIPT [ARGS])."""\n'
    "import sys\n\n"
    "if sys.argv[1:2] == [\"run-trainer\"]:\n"
    "    from %s.run_trainer import main\n"
    "    sys.exit(main(sys.argv[2:]))\n"
    "from %s.cli import main\n\n"
    "sys.exit(main())\n" % (UPSTREAM, PACKAGE)
).encode("utf-8")


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.create_system = 3  # Unix, whatever machine builds it
    info.external_attr = (0o100644 & 0xFFFF) << 16
    info.compress_type = zipfile.ZIP_STORED  # deflate output may differ between zlib builds
    return info


def agent_sources() -> list:
    """(name inside the zipapp, bytes) of every agent and planned-scheduler module, sorted, line endings
    normalized."""
    return [("%s/%s" % (package, p.name), p.read_bytes().replace(b"\r\n", b"\n"))
            for package, folder in ((PACKAGE, AGENT_DIR), (UPSTREAM, UPSTREAM_DIR))
            for p in sorted(folder.glob("*.py")) if p.is_file()]


def agent_bundle() -> bytes:
    """The zipapp bytes: a shebang, then a stored zip of __main__.py, areal_agent/*.py and areal_upstream/*.py."""
    buffer = io.BytesIO()
    buffer.write(SHEBANG)
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(_entry("__main__.py"), LAUNCHER)
        for name, data in agent_sources():
            archive.writestr(_entry(name), data)
    return buffer.getvalue()


def agent_sha256() -> str:
    return hashlib.sha256(agent_bundle()).hexdigest()
