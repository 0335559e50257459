"""Settings that can never work: every number within sane bounds, paths that the agent and Slurm can use.

Called by rules.py (check_rules) on a schema-valid experiment; the bounds are listed in docs/experiment-format.md."""
from __future__ import annotations

import re

from areal_compiler.source import Source
from areal_compiler.spec.records import Experiment

INT32 = 2 ** 31 - 1
# (code, path from the experiment, lowest, highest, hint); "*" steps over every role. The JSON Schema (schema.py)
# states the same bounds as minimum and maximum.
BOUNDS = (
    ("E402", ("compute", "num_accelerators"), 0, 65536, "at most 65536 devices (8192 nodes of 8)"),
    ("E452", ("roles", "*", "replicas"), 1, 4096, None),
    ("E452", ("roles", "*", "scheduling_spec", "cpu"), 1, 1024, "CPU cores per worker"),
    ("E452", ("roles", "*", "scheduling_spec", "gpu"), 0, 64, "devices per worker"),
    ("E452", ("roles", "*", "scheduling_spec", "mem"), 1, 65536, "memory per worker in GB"),
    ("E452", ("roles", "*", "scheduling_spec", "port_count"), 1, 256, "ports per worker"),
    ("E452", ("driver", "scheduling_spec", "cpu"), 1, 1024, None),
    ("E452", ("driver", "scheduling_spec", "mem"), 1, 65536, None),
    ("E460", ("staleness", "max_head_offpolicyness"), 0, INT32, None),
    ("E460", ("staleness", "consumer_batch_size"), 1, INT32, "the gate admits work in batches of this size"),
    ("E460", ("staleness", "max_concurrent_rollouts"), 0, INT32, "0 or omitted: the batch size"),
    ("E460", ("staleness", "queue_size"), 0, INT32, "0 or omitted: 16 x max_concurrent_rollouts"),
    ("E470", ("runtime", "heartbeat_interval"), 0.1, 3600, "seconds; e.g. 5"),
    ("E470", ("runtime", "hung_after"), 0.2, 7 * 86400, "seconds; e.g. 30"),
    ("E470", ("runtime", "grace_period"), 0, 3600, "seconds; e.g. 10"),
    ("E480", ("slurm", "max_retries"), 0, 100, None),
)
# What a path may not hold: sbatch lines cannot quote these, and `%` is a Slurm filename pattern.
NOT_IN_PATH = re.compile(r'[\x00-\x1f\x7f"\\%]')


def check_bounds(source: Source, exp: Experiment, out: list) -> None:
    data = exp.dump()
    for code, pattern, low, high, hint in BOUNDS:
        for path, value in _values(data, pattern, ()):
            if value is not None and not low <= value <= high:
                out.append(source.diagnostic(code, f"{path[-1]} must be between {_number(low)} and "
                                                   f"{_number(high)}, got {_number(value)}", path, hint))
    check_paths(source, exp, out)


def _number(value) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _values(data, pattern: tuple, path: tuple):
    if not pattern:
        yield path, data
        return
    if not isinstance(data, dict):
        return
    keys = list(data) if pattern[0] == "*" else [pattern[0]] if pattern[0] in data else []
    for key in keys:
        yield from _values(data[key], pattern[1:], path + (key,))


def check_paths(source: Source, exp: Experiment, out: list) -> None:
    """fileroot and secret files: absolute paths every node can use and an sbatch line can hold."""
    paths = [(("fileroot",), exp.fileroot, "E472", "a shared directory every node mounts at the same path, "
                                                   "e.g. /shared/areal/experiments")]
    paths += [(("secrets", name, "file"), secret.file, "E434", "e.g. /shared/secrets/wandb_api_key")
              for name, secret in exp.secrets.items()]
    for path, value, code, hint in paths:
        if not value.startswith("/"):
            problem = "must be an absolute path (the agent does not run in your directory)"
        elif NOT_IN_PATH.search(value):
            problem = "must not hold `%`, `\"`, `\\` or control characters such as a line break"
        elif path == ("fileroot",) and not value.strip("/"):
            problem = "must not be the root directory"
        else:
            continue
        out.append(source.diagnostic(code, f"{'.'.join(path)} `{value}` {problem}", path, hint))
