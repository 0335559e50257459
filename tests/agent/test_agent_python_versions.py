"""The agent must run on the Python of old job containers (3.9+). No 3.9 interpreter can be installed here, so
vermin checks every agent module statically: syntax, and the stdlib modules, functions and arguments it uses."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

AGENT = Path(__file__).resolve().parents[2] / "compiler" / "agent"


def test_agent_needs_at_most_python_3_9():
    vermin = Path(sys.executable).with_name("vermin")  # the console script installed beside this Python
    proc = subprocess.run([str(vermin), "--no-tips", "--eval-annotations", "-t=3.9-",
                           "--violations", str(AGENT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = re.search(r"Minimum required versions: (\d+)\.(\d+)", proc.stdout)
    assert found and (int(found[1]), int(found[2])) <= (3, 9), proc.stdout
