"""Cross-field rules: what the schema alone cannot say (catalog, device budget, colocation, names, ...).

Called by check.py on a schema-valid experiment; each rule returns located diagnostics with a stable code."""
from __future__ import annotations

import re
import shlex

from areal_compiler.bounds import check_bounds
from areal_compiler.diagnostics import Diagnostic, Span, did_you_mean
from areal_compiler.source import Source
from areal_compiler.spec.allocation import AllocationError
from areal_compiler.spec.catalog import CATALOG, Accelerator
from areal_compiler.spec.records import Experiment
from areal_compiler.spec.shape import RoleShape, parse_role_backend, role_shape

# Single-field rules as patterns, matched whole (fullmatch: a trailing line break is no part of a name); the JSON
# Schema for editors (schema.py) states the same patterns.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
TRIAL_NAME = re.compile(r"^[a-z0-9]+$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
VERSION = re.compile(r"^[0-9]+\.[0-9]+$")  # MAJOR.MINOR
ETCD3_ADDR = re.compile(r"^[^\s:/]+:[0-9]{1,5}$")
# What an #SBATCH line holds: not blank, no quote, backslash or control character.
SLURM_SETTING = re.compile(r'^(?=[\s\S]*\S)[^"\\\x00-\x1f]*$')
DRIVER_ROLE = "driver"  # the driver's name in the plan: no role may take it
VISIBILITY_VARS = {"CUDA_VISIBLE_DEVICES", "ASCEND_RT_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES",
                   "ROCR_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"}
CONTRACT_VARS = {"MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE",
                 "AREAL_EXPERIMENT_NAME", "AREAL_TRIAL_NAME", "AREAL_RUN_ID", "AREAL_ROLE", "AREAL_WORKER_INDEX",
                 "AREAL_ROLE_WORKERS", "AREAL_NODE_RANK", "AREAL_NUM_NODES", "AREAL_HOST", "AREAL_NODE_HOSTS",
                 "AREAL_GATE_URL", "AREAL_HEARTBEAT_FILE", "AREAL_ALLOCATED_DEVICES", "AREAL_TARGET_DIR", "AREAL_PORTS",
                 "AREAL_PLAN_FILE", "AREAL_NODE_HOSTS_FILE"}
# Only the contract's own AREAL_ names are reserved: upstream AReaL reads knobs of its own (AREAL_CACHE_DIR, ...).
CONTRACT_PREFIXES = ("AREAL_ADDRS_", "AREAL_AGENT_", "AREAL_INSTANCE_")
MAX_BASE_NAME = 52  # <exp>-<trial>-<role>; StatefulSet pods add "-<ordinal>" and revisions "-<10 chars>"


def check_rules(source: Source, exp: Experiment) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    accelerator = check_compute(source, exp, out)
    check_names(source, exp, out)
    shapes = check_backends(source, exp, accelerator, out)
    for name, role in exp.roles.items():
        check_role_fields(source, exp, name, shapes.get(name), out)
    check_colocation(source, exp, shapes, out)
    if accelerator is not None and len(shapes) == len(exp.roles):
        check_budget(source, exp, accelerator, shapes, out)
    check_driver(source, exp, out)
    check_upstream(source, exp, out)
    check_env(source, exp, out)
    check_staleness(source, exp, shapes, out)
    check_runtime(source, exp, out)
    check_bounds(source, exp, out)
    return out


def check_compute(source: Source, exp: Experiment, out: list) -> Accelerator | None:
    name = exp.compute.accelerator
    accelerator = CATALOG.get(name)
    if accelerator is None:
        out.append(source.diagnostic("E401", f"unknown accelerator type `{name}`", ("compute", "accelerator"),
                                     did_you_mean(name, CATALOG, cutoff=0.4)
                                     or f"known types: {', '.join(CATALOG)}"))
        return None
    n, per_node = exp.compute.num_accelerators, accelerator.devices_per_node
    if per_node == 0 and n != 0:
        out.append(source.diagnostic("E402", f"num_accelerators for {name} must be 0, got {n}",
                                     ("compute", "num_accelerators"), "CPU nodes have no accelerators"))
    elif per_node and (n <= 0 or n % per_node):
        out.append(source.diagnostic(
            "E402", f"num_accelerators for {name} must be a positive multiple of {per_node}, got {n}",
            ("compute", "num_accelerators"), f"use {max(per_node, n - n % per_node)} or {(n // per_node + 1) * per_node}"))
    return accelerator


def check_names(source: Source, exp: Experiment, out: list) -> None:
    if not DNS_LABEL.fullmatch(exp.experiment_name):
        out.append(source.diagnostic("E421", f"experiment_name `{exp.experiment_name}` must be lower-case letters, "
                                             "digits and `-` (no `_` or `/`), starting and ending alphanumeric",
                                     ("experiment_name",), "e.g. gsm8k-grpo"))
    if not TRIAL_NAME.fullmatch(exp.trial_name):
        out.append(source.diagnostic("E422", f"trial_name `{exp.trial_name}` must be lower-case letters and "
                                             "digits only (no `-`, `_` or `/`)", ("trial_name",), "e.g. trial0"))
    if not DNS_LABEL.fullmatch(exp.kubernetes.namespace) or len(exp.kubernetes.namespace) > 63:
        out.append(source.diagnostic("E424", f"namespace `{exp.kubernetes.namespace}` is not a DNS-1123 label",
                                     ("kubernetes", "namespace"), "lower-case letters, digits and `-`"))
    for role in exp.roles:
        if not DNS_LABEL.fullmatch(role):
            out.append(source.diagnostic("E420", f"role name `{role}` must be lower-case letters, digits and `-` "
                                                 "(it names Slurm jobs and Kubernetes objects)",
                                         ("roles", role), "e.g. eval-rollout", key=True))
        if role.endswith("-file") and role[:-5] in exp.roles:
            var = "AREAL_ADDRS_" + role[:-5].upper().replace("-", "_")
            out.append(source.diagnostic(
                "E426", f"role `{role}` beside role `{role[:-5]}`: {var}_FILE would name both `{role}`'s addresses "
                        f"and the file that holds `{role[:-5]}`'s when that list is long", ("roles", role),
                "rename one of them, e.g. `" + role[:-5] + "-files`", key=True))
        base = f"{exp.experiment_name}-{exp.trial_name}-{role}"
        if len(base) > MAX_BASE_NAME:
            out.append(source.diagnostic(
                "E423", f"`{base}` is {len(base)} characters; generated object names must stay within "
                        f"{MAX_BASE_NAME} so every derived Kubernetes name fits 63", ("roles", role),
                "shorten the experiment, trial or role name", key=True))


def check_backends(source: Source, exp: Experiment, accelerator: Accelerator | None,
                   out: list) -> dict[str, RoleShape]:
    shapes = {}
    per_node = accelerator.devices_per_node if accelerator else 0
    for name, role in exp.roles.items():
        if role.backend is not None:
            if role.replicas is not None:
                out.append(source.diagnostic("E409", f"role `{name}` sets both backend and replicas",
                                             ("roles", name, "replicas"), "the backend's dims give the worker "
                                             "count; remove replicas", key=True))
            try:
                parse_role_backend(role.backend)
            except AllocationError as exc:
                out.append(_allocation_diagnostic(source, ("roles", name, "backend"), role.backend, exc))
                continue
        shapes[name] = role_shape(name, role, per_node)
    return shapes


def _allocation_diagnostic(source: Source, path: tuple, text: str, exc: AllocationError) -> Diagnostic:
    span = source.span_of(path)
    if span is not None:
        line = source.line(span.line) or ""
        quote = 1 if line[span.col - 1:span.col] in "\"'" else 0
        span = Span(span.line, span.col + quote + exc.offset, 1)
    return source.diagnostic(exc.code, f"invalid backend `{text}`: {exc.message}", path, exc.hint, span=span)


def check_role_fields(source: Source, exp: Experiment, name: str, shape: RoleShape | None, out: list) -> None:
    role = exp.roles[name]
    spec, path = role.scheduling_spec, ("roles", name)
    if shape is not None and shape.kind != "helper" and spec.gpu is not None and spec.gpu != shape.devices_per_worker:
        out.append(source.diagnostic("E410", f"scheduling_spec.gpu is {spec.gpu} but backend `{role.backend}` "
                                             f"gives {shape.devices_per_worker} per worker",
                                     path + ("scheduling_spec", "gpu"), "remove gpu: the backend decides it"))
    if shape is not None and shape.kind == "training" and spec.port_count < 2:
        out.append(source.diagnostic("E450", f"training role `{name}` needs port_count >= 2, got {spec.port_count}",
                                     path + ("scheduling_spec", "port_count"),
                                     "worker 0's second port becomes MASTER_PORT"))
    check_cmd(source, name, role, shape, out)


def split_cmd(source: Source, path: tuple, cmd: str, example: str, out: list) -> list[str]:
    """A cmd's arguments, split like a shell would (it never runs in one); [] with a located error when it cannot be
    split or is empty."""
    try:
        argv = shlex.split(cmd)
    except ValueError as exc:
        out.append(source.diagnostic("E443", f"cmd cannot be split into arguments: {exc}", path,
                                     "close the quote; cmd is split like a shell would, but never run by one"))
        return []
    if not argv:
        out.append(source.diagnostic("E441", "cmd is empty", path, example))
    return argv


def check_driver(source: Source, exp: Experiment, out: list) -> None:
    """The driver: `driver` is its name in the plan, so no role may take it; its cmd follows a role's rules, but
    nothing is appended to it (it has no planned port)."""
    if DRIVER_ROLE in exp.roles:
        out.append(source.diagnostic("E425", "role name `driver` is reserved for the experiment's driver",
                                     ("roles", "driver"), "rename the role, or make it the top-level `driver:`",
                                     key=True))
    if exp.driver is None:
        return
    split_cmd(source, ("driver", "cmd"), exp.driver.cmd, "e.g. python3 train.py --config exp.yaml", out)


def check_cmd(source: Source, name: str, role, shape: RoleShape | None, out: list) -> None:
    path = ("roles", name, "cmd")
    colocated = role.scheduling_strategy.type == "colocation"
    if colocated and not role.scheduling_strategy.fork:
        if role.cmd is not None:
            out.append(source.diagnostic("E415", f"role `{name}` has fork: false, so it runs inside its target's "
                                                 "processes and cannot have its own cmd", path,
                                         "remove cmd, or set scheduling_strategy.fork: true", key=True))
        return
    if role.cmd is None:
        if not colocated:  # a forked colocated role defaults to its target's command
            out.append(source.diagnostic("E440", f"role `{name}` needs a `cmd`", ("roles", name),
                                         "e.g. cmd: python3 -m areal.infra.rpc.rpc_server", key=True))
        return
    argv = split_cmd(source, path, role.cmd, "e.g. python3 -m areal.infra.rpc.rpc_server", out)
    if any(a == "--port" or a.startswith("--port=") for a in argv):
        out.append(source.diagnostic("E442", "cmd must not contain --port: the launcher appends `--port {port0}`",
                                     path, "remove --port and its value"))


# What a role with `upstream: areal` gets after `--port P` (agent/contract.py upstream_args): its cmd may not pass them.
UPSTREAM_FLAGS = ("--experiment-name", "--trial-name", "--role", "--worker-index", "--name-resolve-type",
                  "--nfs-record-root", "--etcd3-addr", "--fileroot")
PYTHON = re.compile(r"^python[0-9.]*$")


def check_upstream(source: Source, exp: Experiment, out: list) -> None:
    """`upstream: areal`: a role's cmd takes upstream's worker arguments; the driver's is a Python command the
    agent runs under the planned scheduler (agent.pyz run-trainer); the `areal` block's name service is usable."""
    for name, role in exp.roles.items():
        if role.upstream is None:
            continue
        path = ("roles", name, "upstream")
        if role.scheduling_strategy.type == "colocation" and not role.scheduling_strategy.fork:
            out.append(source.diagnostic("E445", f"role `{name}` has fork: false: it has no process of its own to "
                                                 "pass upstream's arguments to", path, "remove upstream", key=True))
        elif role.scheduling_spec.port_count < 1:
            out.append(source.diagnostic("E445", f"role `{name}` with upstream: areal needs a port (upstream's RPC "
                                                 "server is passed `--port`)", ("roles", name, "scheduling_spec",
                                                                                "port_count"),
                                         "set port_count: 1 or more"))
        try:
            argv = shlex.split(role.cmd or "")
        except ValueError:
            continue  # E443 says so
        passed = sorted({a.split("=")[0] for a in argv} & set(UPSTREAM_FLAGS))
        if passed:
            out.append(source.diagnostic("E444", f"cmd passes {', '.join(passed)}, which upstream: areal appends "
                                                 "for every worker", ("roles", name, "cmd"),
                                         "remove them: names come from the `areal` block, the index from the plan"))
    if exp.driver is not None and exp.driver.upstream is not None:
        try:
            argv = shlex.split(exp.driver.cmd)
        except ValueError:
            argv = []  # E443 says so
        if argv and (not PYTHON.match(argv[0].rsplit("/", 1)[-1]) or len(argv) < 2 or argv[1:] == ["-m"]):
            out.append(source.diagnostic("E445", "with upstream: areal the driver's cmd must be `python SCRIPT "
                                                 "[ARGS]` or `python -m MODULE [ARGS]`", ("driver", "cmd"),
                                         "e.g. python3 examples/math/gsm8k_rl.py --config gsm8k_grpo.yaml"))
    resolve = exp.areal.name_resolve
    at = ("areal", "name_resolve")
    if resolve.type == "nfs" and not resolve.nfs_record_root.startswith("/"):
        out.append(source.diagnostic("E446", f"nfs_record_root must be an absolute path, got "
                                             f"{resolve.nfs_record_root!r}", at + ("nfs_record_root",),
                                     "a directory every node shares, e.g. /shared/areal/name_resolve"))
    if resolve.type == "etcd3" and not ETCD3_ADDR.fullmatch(resolve.etcd3_addr):
        out.append(source.diagnostic("E446", f"etcd3_addr must be HOST:PORT, got {resolve.etcd3_addr!r}",
                                     at + ("etcd3_addr",), "e.g. etcd.example.com:2379"))
    for key in ("experiment_name", "trial_name"):
        if getattr(exp.areal, key) == "":
            out.append(source.diagnostic("E446", f"areal.{key} is empty", ("areal", key),
                                         f"remove it to use the experiment's {key}"))


def check_colocation(source: Source, exp: Experiment, shapes: dict[str, RoleShape], out: list) -> None:
    for name, role in exp.roles.items():
        strategy, path = role.scheduling_strategy, ("roles", name, "scheduling_strategy")
        if strategy.type == "separation":
            if strategy.target is not None:
                out.append(source.diagnostic("E416", f"role `{name}` names a target but its type is separation",
                                             path + ("target",), "set type: colocation, or remove target"))
            continue
        target = strategy.target
        if target is None:
            out.append(source.diagnostic("E411", f"role `{name}` is colocated but names no target", path,
                                         "add target: <role whose devices it shares>"))
        elif target == name:
            out.append(source.diagnostic("E412", f"role `{name}` cannot be colocated with itself",
                                         path + ("target",), "name another role"))
        elif target not in exp.roles:
            out.append(source.diagnostic("E411", f"colocation target `{target}` is not a role", path + ("target",),
                                         did_you_mean(target, exp.roles) or f"roles: {', '.join(exp.roles)}"))
        elif exp.roles[target].scheduling_strategy.type == "colocation":
            cycle = _cycle(exp, name)
            message = (f"colocation cycle: {' -> '.join(cycle)}" if cycle else
                       f"`{target}` is itself colocated; colocate `{name}` with the role that owns the devices")
            out.append(source.diagnostic("E413", message, path + ("target",),
                                         f"target `{exp.roles[target].scheduling_strategy.target}` instead"
                                         if not cycle else "break the cycle: one role must own its devices"))
        elif name in shapes and target in shapes:
            mine, theirs = shapes[name], shapes[target]
            if mine.kind != "helper" and mine.devices != theirs.devices:
                out.append(source.diagnostic(
                    "E414", f"`{name}` uses {mine.devices} devices but its target `{target}` has {theirs.devices}; "
                            "colocated roles must have equal world sizes", ("roles", name, "backend"),
                    f"make `{name}` span {theirs.devices} devices"))
            elif strategy.fork and mine.kind == "helper" and role.replicas not in (None, theirs.workers):
                out.append(source.diagnostic(
                    "E414", f"`{name}` is forked once per worker of `{target}` ({theirs.workers}), "
                            f"but replicas is {role.replicas}", ("roles", name, "replicas"),
                    "remove replicas: a forked role has one process per target worker"))


def _cycle(exp: Experiment, start: str) -> list[str]:
    seen, node = [start], start
    while True:
        strategy = exp.roles[node].scheduling_strategy
        node = strategy.target if strategy.type == "colocation" else None
        if node is None or node not in exp.roles:
            return []
        if node in seen:
            return seen[seen.index(node):] + [node]
        seen.append(node)


def check_budget(source: Source, exp: Experiment, acc: Accelerator, shapes: dict[str, RoleShape],
                 out: list) -> None:
    per_node, total = acc.devices_per_node, exp.compute.num_accelerators
    placed = {n: s for n, s in shapes.items() if s.is_placed}
    used = sum(s.devices for s in placed.values())
    for name, shape in placed.items():
        path = ("roles", name, "backend" if shape.allocation else "scheduling_spec")
        if per_node == 0 and shape.devices:
            out.append(source.diagnostic("E403", f"role `{name}` asks for {shape.devices} devices on CPU nodes",
                                         path, "use a GPU accelerator type, or gpu: 0"))
        elif shape.kind == "inference" and _instance_size(shape) > per_node and (
                shape.backend == "vllm" or _instance_size(shape) % per_node):
            size = _instance_size(shape)
            if shape.backend == "vllm":
                out.append(source.diagnostic("E406", f"a vLLM instance must fit one node: t*p = {size} > {per_node}",
                                             path, f"use t*p <= {per_node}, or more instances (d)"))
            else:
                out.append(source.diagnostic(
                    "E405", f"an SGLang instance larger than a node must use whole nodes: t*p = {size} is not a "
                            f"multiple of {per_node}", path, f"use t*p = {per_node * (size // per_node + 1)}"))
        elif shape.kind == "inference" and shape.allocation.dims.p > 1:
            out.append(source.diagnostic("E407", "pipeline parallelism (p > 1) is not supported for inference "
                                                 "servers", path, "use t for model parallelism"))
        elif per_node and shape.devices_per_worker > per_node:
            out.append(source.diagnostic("E404", f"a worker of `{name}` needs {shape.devices_per_worker} devices; "
                                                 f"a node has {per_node}", path))
        elif per_node and shape.devices > per_node and shape.devices % per_node:
            out.append(source.diagnostic("E404", f"role `{name}` spans {shape.devices} devices, more than a node "
                                                 f"but not whole nodes of {per_node}", path,
                                         f"use a multiple of {per_node} devices"))
    sharing = exp.compute.allow_device_sharing
    if per_node and total == per_node and 0 < used < total:  # one node, partly used: upstream runs it so too
        first = max(s.devices for s in placed.values()) if sharing else used
        idle = f"device {first}" if first == total - 1 else f"devices {first}-{total - 1}"
        out.append(source.diagnostic("W402", f"{idle} of the node stay idle: the roles use {used} of its {total} "
                                             f"({', '.join(f'{n}: {s.devices}' for n, s in placed.items())})",
                                     ("compute", "num_accelerators"),
                                     "the job still asks for the whole node (Slurm: all its devices); size the "
                                     "roles up to use them", severity="warning"))
    elif used != total and not (sharing and used > total):
        hint = ("set compute.num_accelerators to " + str(used) if used % max(per_node, 1) == 0 and used
                else "resize the roles so they add up")
        if used > total:
            hint += ", or opt in to sharing with compute.allow_device_sharing: true"
        out.append(source.diagnostic("E403", f"roles use {used} devices but compute.num_accelerators is {total} "
                                             f"({', '.join(f'{n}: {s.devices}' for n, s in placed.items())})",
                                     ("compute", "num_accelerators"), hint))
    elif sharing and used > total:
        out.append(source.diagnostic("W401", f"roles share devices: {used} requested on {total} "
                                             "(allow_device_sharing)", ("compute", "allow_device_sharing"),
                                     "make sure the roles offload memory", severity="warning"))


def _instance_size(shape: RoleShape) -> int:
    return shape.allocation.dims.t * shape.allocation.dims.p


def check_env(source: Source, exp: Experiment, out: list) -> None:
    names: list[tuple[str, tuple]] = [(k, ("roles", r, "scheduling_spec", "env_vars", k))
                                      for r, role in exp.roles.items() for k in role.scheduling_spec.env_vars]
    if exp.driver is not None:
        names += [(k, ("driver", "scheduling_spec", "env_vars", k)) for k in exp.driver.scheduling_spec.env_vars]
    names += [(k, ("secrets", k)) for k in exp.secrets]
    for key, path in names:
        if not ENV_NAME.fullmatch(key):
            out.append(source.diagnostic("E430", f"`{key}` is not a valid environment variable name", path,
                                         "letters, digits and `_`, not starting with a digit", key=True))
        elif key in VISIBILITY_VARS:
            out.append(source.diagnostic("E431", f"`{key}` must not be set: the launcher derives device "
                                                 "visibility from the plan", path, "remove it", key=True))
        elif key in CONTRACT_VARS or key.startswith(CONTRACT_PREFIXES):
            out.append(source.diagnostic("E432", f"`{key}` is part of the worker environment contract and is set "
                                                 "by the launcher", path, "remove it, or use another name", key=True))
    for key in exp.secrets:
        for r, role in exp.roles.items():
            if key in role.scheduling_spec.env_vars:
                out.append(source.diagnostic("E433", f"`{key}` is both a secret and a plain env var of `{r}`",
                                             ("roles", r, "scheduling_spec", "env_vars", key),
                                             "secret values belong in `secrets:` only", key=True))


def check_staleness(source: Source, exp: Experiment, shapes: dict[str, RoleShape], out: list) -> None:
    s = exp.staleness
    if s is None:
        return
    if s.gate_role is not None and (s.gate_role not in shapes or not shapes[s.gate_role].is_placed):
        out.append(source.diagnostic("E462", f"gate_role `{s.gate_role}` must be a role with its own workers "
                                             "(not colocated)", ("staleness", "gate_role"),
                                     did_you_mean(s.gate_role, [n for n, sh in shapes.items() if sh.is_placed])))
    mcr = s.max_concurrent_rollouts or s.consumer_batch_size  # 0 or omitted: the batch size (as upstream)
    if s.queue_size and s.queue_size < s.consumer_batch_size:
        out.append(source.diagnostic("E461", f"queue size is too small: {s.queue_size} < consumer_batch_size "
                                             f"{s.consumer_batch_size}", ("staleness", "queue_size"),
                                     f"use at least {s.consumer_batch_size}, or omit it (default {16 * max(mcr, 1)})"))


def check_runtime(source: Source, exp: Experiment, out: list) -> None:
    rt = exp.runtime
    if rt.hung_after <= rt.heartbeat_interval:
        out.append(source.diagnostic("E470", f"hung_after ({rt.hung_after}) must exceed heartbeat_interval "
                                             f"({rt.heartbeat_interval})", ("runtime", "hung_after"),
                                     f"e.g. {rt.heartbeat_interval * 6:g}"))
    if not 1024 <= rt.base_port <= 65535:
        why = "is below 1024: only root may listen on those ports" if rt.base_port < 1024 else \
            "is not a TCP port (those end at 65535)"
        out.append(source.diagnostic("E471", f"base_port {rt.base_port} {why}", ("runtime", "base_port"),
                                     "use 1024 or more (default 20000): every logical node's ports start there"))
    slurm = exp.slurm
    if not VERSION.fullmatch(slurm.version):
        out.append(source.diagnostic("E480", f"slurm.version `{slurm.version}` is not MAJOR.MINOR",
                                     ("slurm", "version"), "e.g. \"23.11\" (quoted)"))
    settings = [(("slurm", k), v) for k, v in slurm.dump(exclude_none=True).items()
                if isinstance(v, str) and k != "template"]
    settings += [(("roles", r, "slurm", k), v) for r, role in exp.roles.items() if role.slurm
                 for k, v in role.slurm.dump(exclude_none=True).items() if isinstance(v, str)]
    for path, value in settings:
        if not SLURM_SETTING.fullmatch(value):
            out.append(source.diagnostic("E481", f"slurm.{path[-1]} {value!r} cannot be written into an #SBATCH "
                                                 "line (empty, or a quote, backslash or control character)", path,
                                         "use the value Slurm expects, e.g. a partition name"))
