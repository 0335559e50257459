"""What a local run needs of this host before its agents start: agent.pyz unpacked and compiled once, and a word
when the run's logical nodes share this host's devices.

Called by runs/local.py (the runner's set-up, and `areal run`/`areal start`)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from areal_compiler.agent.plan import devices_apart, host_devices

UNPACKED = "agent.pyz.d"  # agent.pyz unpacked in the run dir: `python DIR` runs it as it runs the zip


def unpack_agent(target_dir: Path, run_dir: Path) -> None:
    """The folder's agent.pyz unpacked into the run dir and its modules compiled once: run from the zip, each of
    a run's agents (hundreds, all starting at once) compiled every module again, 0.1 s of CPU each."""
    import compileall
    import zipfile

    with zipfile.ZipFile(target_dir / "agent.pyz") as bundle:
        bundle.extractall(run_dir / UNPACKED)
    compileall.compile_dir(str(run_dir / UNPACKED), quiet=2)


def say_shared_devices(target_dir: Path) -> None:
    """At start, on stderr: when the logical nodes share this host's devices because it has fewer than they use
    apart (the agents decide the same way: agent/plan.py devices_apart)."""
    try:
        plan = json.loads((target_dir / "plan.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # the runner reads it again and says what is wrong with it
    per_node, nodes = int(plan["accelerator"]["devices_per_node"]), int(plan["nodes"])
    if nodes > 1 and per_node and any(w.get("devices") for w in plan["workers"]) and not devices_apart(plan, nodes):
        print(f"areal: this host has {host_devices(plan)} {plan['accelerator']['name'].split('_')[0]} device(s), "
              f"fewer than the {per_node * nodes} that its {nodes} logical nodes use apart: every node uses devices "
              f"0-{per_node - 1}, so roles on different nodes share them", file=sys.stderr)
