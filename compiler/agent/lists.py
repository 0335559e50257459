"""Long lists in the environment: a list over a size is handed over in a file that `<NAME>_FILE` names.

Called by supervisor.py (every worker's and forked child's AREAL_NODE_HOSTS and AREAL_ADDRS_<ROLE>), plan.py (the
node addresses a target gives the agent, which upstream/workers.py reads too), the Ray launcher, and at compile time
by the Slurm and Kubernetes targets (targets/slurm.py, k8s_layout.py). Why: Linux refuses to start a program
(execve: E2BIG) when one NAME=value passes 128 KiB (MAX_ARG_STRLEN) or argv and the environment together pass a
quarter of the stack limit, which is never less than 128 KiB; at 8,192 nodes AREAL_ADDRS_<ROLE> is about 650 KB and
AREAL_NODE_HOSTS about 490 KB. Stdlib only."""
from __future__ import annotations

import hashlib
import os
from typing import Dict, Mapping, Optional, Set

from .files import atomic_write, read_pieces

LIST_LIMIT = 16 * 1024  # bytes of one list kept in the environment: an eighth of what Linux allows one variable
LISTS_BUDGET = 64 * 1024  # bytes of all lists kept there together: half of the least Linux allows argv + environment
MAX_LIST = 64 << 20  # bytes of a list file read back
NODE_HOSTS = "AREAL_NODE_HOSTS"


def file_variable(name: str) -> str:
    """The variable that names the file holding NAME's value when NAME itself is not set."""
    return name + "_FILE"


def read_list(environ: Mapping[str, str], name: str) -> Optional[str]:
    """NAME's value when it is set; else the text of the file $NAME_FILE names (a file the Kubernetes target cut
    into pieces PATH.1 .. PATH.N is read whole); None when neither is set. OSError or ValueError (too large, not
    UTF-8) when the file cannot be read."""
    if name in environ:
        return environ[name]
    path = environ.get(file_variable(name))
    return read_pieces(path, MAX_LIST).decode("utf-8") if path else None


def kept(sizes: Mapping[str, int]) -> Set[str]:
    """The rule, on each list's size in bytes: shortest first (ties by name), a list stays in the environment while
    it is at most LIST_LIMIT bytes and, with the lists kept before it, at most LISTS_BUDGET; every other list goes
    to a file."""
    out: Set[str] = set()
    total = 0
    for name in sorted(sizes, key=lambda n: (sizes[n], n)):
        if sizes[name] > LIST_LIMIT or total + sizes[name] > LISTS_BUDGET:
            break
        out.add(name)
        total += sizes[name]
    return out


def place_lists(env: Dict[str, str], lists: Mapping[str, str], directory: str) -> Dict[str, str]:
    """Set every list in ENV as the rule says: NAME=value, or NAME_FILE=the path of a file in DIRECTORY holding
    exactly the value (UTF-8, nothing added), NAME unset. Whatever ENV held for NAME or NAME_FILE before is
    replaced. Returns ENV."""
    stay = kept({name: len(value.encode("utf-8")) for name, value in lists.items()})
    for name, value in lists.items():
        env.pop(name, None)
        env.pop(file_variable(name), None)
        if name in stay:
            env[name] = value
        else:
            env[file_variable(name)] = list_file(directory, name, value)
    return env


def list_file(directory: str, name: str, value: str) -> str:
    """DIRECTORY/NAME.<16 hex of the value's sha256>, written once, atomically: the agents of a job that share the
    directory (a run dir on a shared fileroot) find one file per distinct list, and a requeued attempt with other
    hosts writes another."""
    data = value.encode("utf-8")
    path = os.path.join(directory, "%s.%s" % (name, hashlib.sha256(data).hexdigest()[:16]))
    try:
        if os.path.getsize(path) == len(data):
            return path
    except OSError:
        pass
    os.makedirs(directory, exist_ok=True)
    atomic_write(path, data, durable=False)
    return path
