"""Upstream AReaL's own `areal` CLI (2.0: `areal train|inf|agent`) beside ours: our `areal` hands those command
groups to it unchanged, and `areal --version` names both programs and the upstream schema the importer knows.

Called by cli.py before click parses anything, so arguments, stdio and the exit code pass through untouched."""
from __future__ import annotations

import sys
from typing import NoReturn

GROUPS = ("train", "inf", "agent")  # upstream 2.0's click groups (areal/v2/cli/cli.py)
OURS = "areal_compiler.cli:run"  # our console scripts `areal` and `areal-compile`


def upstream_entry_point():
    """The `areal` console script another installed distribution declares (upstream AReaL 2.0's
    `areal.v2.cli.main:cli`), or None."""
    from importlib.metadata import entry_points

    return next((ep for ep in entry_points(group="console_scripts", name="areal")
                 if ep.value.replace(" ", "") != OURS), None)


def hand_over(argv: list[str]) -> NoReturn:
    """Run upstream's CLI in this process with these very arguments (sys.argv) and leave with its exit code."""
    group = argv[1]
    ep = upstream_entry_point()
    if ep is None:
        sys.stderr.write(
            f"areal: `{group}` is a command of upstream AReaL's own CLI (`areal train`, `areal inf`, `areal agent`, "
            "from the `areal` package 2.0 or later; PyPI's areal 1.0.4 has none), which is not installed here.\n"
            "This `areal` is areal-compile's (see `areal --help`). Install upstream AReaL 2.0 from "
            "github.com/areal-project/AReaL to use it; areal-compile stays reachable as `areal-compile`.\n")
        sys.exit(2)
    try:
        program = ep.load()
    except Exception as exc:  # noqa: BLE001 - whatever upstream's import raises, say so in one line
        sys.stderr.write(f"areal: upstream AReaL's CLI ({ep.value}) is installed but cannot be imported: "
                         f"{type(exc).__name__}: {exc}\n")
        sys.exit(1)
    sys.argv = ["areal", *argv[1:]]
    sys.exit(program())


def version_text() -> str:
    from importlib.metadata import PackageNotFoundError, version

    from areal_compiler.importers.upstream_schema import VERSIONS

    try:
        ours = version("areal-compile")
    except PackageNotFoundError:
        ours = "unknown"
    lines = [f"areal-compile {ours} (this `areal`; also installed as `areal-compile`)",
             f"upstream AReaL configs: checked against AReaL {VERSIONS[0]}'s schema (known: {', '.join(VERSIONS)})"]
    ep = upstream_entry_point()
    if ep is None:
        lines.append("upstream AReaL's CLI: not installed (`areal train|inf|agent` need the `areal` package 2.0+)")
    else:
        dist = getattr(ep, "dist", None)
        name = f"{dist.name} {dist.version}" if dist is not None else ep.value
        lines.append(f"upstream AReaL's CLI: {name} ({ep.value}): `areal train|inf|agent` hand over to it")
    return "\n".join(lines)
