"""Fork policy: decides whether a /fork request runs only what the plan declares for that role.

Called by server.py for every POST /fork when runtime.fork_commands is "declared"."""
from __future__ import annotations

import re
from typing import Any, Collection, Dict, List, Optional, Sequence

from .plan import PLACEHOLDER, node_host


def _template_regex(template: str, hosts: Sequence[str]) -> "re.Pattern[str]":
    """`{port<i>}` matches a decimal port, `{host<n>}` matches node n's address exactly, the rest is literal."""
    parts, last = [], 0
    for match in PLACEHOLDER.finditer(template):
        parts.append(re.escape(template[last:match.start()]))
        if match.group(1) == "port":
            parts.append(r"([0-9]{1,5})")
        else:
            parts.append(re.escape(node_host(hosts, int(match.group(2)))))
        last = match.end()
    parts.append(re.escape(template[last:]))
    return re.compile("".join(parts))


def _match_item(template: str, value: str, hosts: Sequence[str], ports: Collection[int]) -> bool:
    try:
        match = _template_regex(template, hosts).fullmatch(value)
    except Exception:  # an unknown {host<n>} in the plan cannot match anything
        return False
    if match is None:
        return False
    return all(int(group) in ports for group in match.groups())


def _match_command(declared: Dict[str, Any], argv: List[str], env: Dict[str, str],
                   hosts: Sequence[str], ports: Collection[int]) -> bool:
    templates = [str(item) for item in declared["argv"]]
    if len(templates) != len(argv):
        return False
    if not all(_match_item(t, v, hosts, ports) for t, v in zip(templates, argv)):
        return False
    declared_env = declared["env"]
    for key, value in env.items():
        if key not in declared_env or not _match_item(str(declared_env[key]), value, hosts, ports):
            return False
    return True


def is_declared(commands: List[Dict[str, Any]], argv: List[str], env: Optional[Dict[str, str]],
                hosts: Sequence[str], allocated_ports: Collection[int]) -> bool:
    """True when argv (and every env entry given) equals one declared template of the role after filling.

    Port placeholders accept only ports this agent allocated; host placeholders only the plan's node addresses;
    env keys must be declared by the same template (values matched the same way)."""
    return any(_match_command(c, argv, env or {}, hosts, allocated_ports) for c in commands)
