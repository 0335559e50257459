"""Fork policy: decides whether a /fork request runs only what the plan declares for that role.

Called by supervisor.py for every POST /fork when runtime.fork_commands is "declared"."""
from __future__ import annotations

from typing import Any, Collection, Dict, List, Optional

from .contract import worker_argv


def is_declared(plan: Dict[str, Any], role: str, index: int, argv: List[str], env: Optional[Dict[str, str]],
                allocated_ports: Collection[int]) -> bool:
    """True when argv is exactly what the agent would run for ROLE/INDEX (contract.worker_argv) on a port this
    agent allocated when the role has ports, and every env entry given is one the role declares, same value."""
    spec = (plan.get("roles") or {}).get(role)
    if not spec:
        return False
    ports: List[int] = []
    if int(spec.get("port_count") or 0):
        given = argv[len(spec["argv"]) + 1] if len(argv) > len(spec["argv"]) + 1 else ""
        if not given.isdigit() or int(given) not in allocated_ports:
            return False
        ports = [int(given)]
    if argv != worker_argv(plan, role, index, ports):
        return False
    declared = spec.get("env") or {}
    return all(key in declared and declared[key] == value for key, value in (env or {}).items())
