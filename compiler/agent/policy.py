"""Fork policy: decides whether a /fork request runs only what the plan declares for that role.

Called by supervisor.py for every POST /fork when runtime.fork_commands is "declared"."""
from __future__ import annotations

from typing import Any, Collection, Dict, List, Optional


def is_declared(plan: Dict[str, Any], role: str, argv: List[str], env: Optional[Dict[str, str]],
                allocated_ports: Collection[int]) -> bool:
    """True when argv is the role's planned command, followed by `--port P` for a port this agent allocated when
    the role has ports, and every env entry given is one the role declares, with the same value."""
    spec = (plan.get("roles") or {}).get(role)
    if not spec:
        return False
    base = [str(item) for item in spec["argv"]]
    if argv[:len(base)] != base:
        return False
    rest = argv[len(base):]
    if int(spec.get("port_count") or 0):
        if len(rest) != 2 or rest[0] != "--port" or not rest[1].isdigit() or int(rest[1]) not in allocated_ports:
            return False
    elif rest:
        return False
    declared = spec.get("env") or {}
    return all(key in declared and declared[key] == value for key, value in (env or {}).items())
