"""Upstream engine blocks -> our roles, as upstream's trainers and controllers create them (domain.md section 9).

Called by importers/areal.py; role names, worker counts and per-worker resources follow upstream's controllers."""
from __future__ import annotations

from areal_compiler.importers.builder import Builder
from areal_compiler.spec.allocation import AllocationError
from areal_compiler.spec.shape import parse_role_backend

RPC_SERVER = "python3 -m areal.infra.rpc.rpc_server"
DATA_GUARD = "python3 -m areal.infra.rpc.guard"  # upstream's default data-service guard command
SPEC_KEYS = {"cpu", "mem", "port_count", "image", "env_vars"}
IGNORED_SPEC_KEYS = {"task_type", "ray_placement_strategy", "gpu"}  # gpu: the backend decides it
SLURM_SPEC_KEYS = {"nodelist", "exclude"}
KNOWN_SPEC_KEYS = SPEC_KEYS | IGNORED_SPEC_KEYS | SLURM_SPEC_KEYS | {
    "cmd", "container_type", "mount", "additional_bash_cmds", "srun_additional_args"}
SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD")


def upstream_roles(b: Builder) -> list[tuple[str, tuple, str]]:
    """(our role name, upstream path of its engine block, kind) in the order upstream's trainer creates them."""
    online = b.get("rollout", "agent", "mode") == "online"
    rl = isinstance(b.get("rollout"), dict)
    out = []
    if isinstance(b.get("train_dataset"), dict) and not online and \
            b.get("train_dataset", "scheduling_spec", default=()) is not None:
        out.append(("data-data", ("train_dataset",), "data"))
    out.append(("actor", ("actor",), "training"))
    if isinstance(b.get("critic"), dict):
        out.append(("critic", ("critic",), "training"))
    if isinstance(b.get("ref"), dict):
        kl_ctl = b.get("actor", "kl_ctl", default=0.1)  # upstream's default kl_ctl is 0.1
        if not rl or (isinstance(kl_ctl, (int, float)) and kl_ctl > 0):
            out.append(("ref", ("ref",), "training"))
    teacher = b.get("teacher")
    if isinstance(teacher, dict) and teacher.get("engine_type", "rollout") == "train":
        out.append(("teacher", ("teacher", "train"), "training"))
    if rl:
        out.append(("rollout", ("rollout",), "inference"))
        if not online:
            out.append(("eval-rollout", ("rollout",), "eval"))
    if isinstance(teacher, dict) and teacher.get("engine_type", "rollout") == "rollout":
        out.append(("teacher", ("teacher", "rollout"), "inference"))
    return out


def translate_roles(b: Builder, cpu_only: bool) -> None:
    """Every role runs upstream's worker command, which upstream's schedulers give their arguments to (upstream:
    areal): its spec `cmd`, the RPC server or the data-service guard by default."""
    for block in ("cluster", "scheduler", "rollout", "train_dataset"):
        if b.get(block) is not None and not isinstance(b.get(block), dict):
            b.error("E511", f"`{block}` must be a mapping", (block,))
    for name, at, kind in upstream_roles(b):
        if b.get(*at) is None:
            b.error("E510", f"no `{'.'.join(at)}` engine: upstream needs at least its `backend`", at,
                    f"add {at[-1]}: {{backend: \"fsdp:d8\"}}")
            continue
        if not isinstance(b.get(*at), dict):
            b.error("E511", f"`{'.'.join(at)}` must be a mapping (an engine config)", at)
            continue
        if kind == "data":
            _data_service(b, name, at)
        elif kind == "eval":
            _eval_rollout(b, name, at)
        else:
            _engine(b, name, at, kind, cpu_only)
        if name in b.data.get("roles", {}):
            b.put(("roles", name, "upstream"), "areal", origin=b.origin(at))
    _unplanned_engines(b)


def _engine(b: Builder, name: str, at: tuple, kind: str, cpu_only: bool) -> None:
    backend = b.get(*at, "backend")
    if backend is None and not b.get("allocation_mode"):  # with it, areal.py fills the backend in
        b.error("E510", f"`{'.'.join(at)}` has no `backend`", at,
                "upstream requires one per engine, e.g. backend: \"fsdp:d4\" (or sglang:d4 for rollout)", key=True)
        return
    size = _instance_size(backend) if kind == "inference" and backend else 1
    if backend is not None and cpu_only:  # CPU nodes: the backend's worker count, no devices
        workers = _workers(backend, kind)
        if workers is not None:
            b.put(("roles", name, "replicas"), workers, at + ("backend",))
    elif backend is not None:
        b.put(("roles", name, "backend"), backend, at + ("backend",))
    _spec(b, name, at, size)
    _strategy(b, name, at)


def _instance_size(backend) -> int:
    """Upstream's rollout controller scales cpu and mem by the instance size (t*p)."""
    try:
        single = parse_role_backend(backend)
    except (AllocationError, TypeError):
        return 1
    return single.dims.t * single.dims.p


def _workers(backend, kind: str) -> int | None:
    try:
        single = parse_role_backend(backend)
    except (AllocationError, TypeError):
        return None
    return single.dims.d if kind == "inference" else single.world


def _spec(b: Builder, name: str, at: tuple, scale: int) -> None:
    specs = b.get(*at, "scheduling_spec")
    if specs is None:
        b.put(("roles", name, "cmd"), RPC_SERVER, origin=b.origin(at))
        return
    if isinstance(specs, dict):
        specs = [specs]
    if not isinstance(specs, list) or not specs or not isinstance(specs[0], dict):
        b.error("E511", "scheduling_spec must be a list of one or two mappings (worker, engine)",
                at + ("scheduling_spec",))
        return
    spec, where = specs[0], at + ("scheduling_spec", 0)
    if not isinstance(b.get(*at, "scheduling_spec"), list):
        where = at + ("scheduling_spec",)
    b.put(("roles", name, "cmd"), spec.get("cmd") or RPC_SERVER, where + ("cmd",))
    for key, value in spec.items():
        if key in SPEC_KEYS and value is not None:
            if key in ("cpu", "mem") and isinstance(value, int) and not isinstance(value, bool):
                value *= scale
            if key == "env_vars" and isinstance(value, dict):
                value = {k: _env_text(v) for k, v in value.items()}
                _secret_warnings(b, where + ("env_vars",), value)
            b.put(("roles", name, "scheduling_spec", key), value, where + (key,))
        elif key in SLURM_SPEC_KEYS and value is not None:
            b.put(("roles", name, "slurm", key), value, where + (key,))
        elif key in ("container_type", "mount") and value is not None:
            value = [m for m in str(value).split(",") if m] if key == "mount" else value
            b.put(("slurm", key), value, where + (key,))
        elif key in ("additional_bash_cmds", "srun_additional_args") and value:
            b.note("W505", f"`{key}` is not carried over: areal compile never runs configuration text as shell",
                   where + (key,), "install what it sets up into the image, or run it in the role's own program",
                   key=True)
        elif key not in KNOWN_SPEC_KEYS:
            b.error("E512", f"unknown scheduling_spec key `{key}`", where + (key,),
                    "upstream's SchedulingSpec has no such field either", key=True)


def _env_text(value) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"  # what OmegaConf gives a str-typed field
    return "" if value is None else str(value)


def _secret_warnings(b: Builder, where: tuple, env: dict) -> None:
    for key in env:
        if set(key.upper().split("_")) & set(SECRET_WORDS) and env[key]:
            b.note("W508", f"`{key}` looks like a secret: as a plain env var its value would be written into "
                           "every artifact", where + (key,), "move it to `secrets:` with --overlay "
                                                              "(secrets: {KEY: {file: /path/to/value}})", key=True)


def _strategy(b: Builder, name: str, at: tuple) -> None:
    strategy = b.get(*at, "scheduling_strategy")
    if not isinstance(strategy, dict):
        return
    for key in ("type", "target", "fork"):
        if strategy.get(key) is not None:
            b.put(("roles", name, "scheduling_strategy", key), strategy[key], at + ("scheduling_strategy", key))


def _eval_rollout(b: Builder, name: str, at: tuple) -> None:
    """Upstream's PPO trainer forks eval-rollout workers onto the rollout servers (gpu 0, colocated)."""
    b.put(("roles", name, "scheduling_strategy"), {"type": "colocation", "target": "rollout"}, origin=b.origin(at))
    spec = b.data.get("roles", {}).get("rollout", {}).get("scheduling_spec", {})
    for key in ("cpu", "mem", "port_count"):
        if key in spec:
            where = ("roles", "rollout", "scheduling_spec", key)
            b.put(("roles", name, "scheduling_spec", key), spec[key], origin=b.origins.get(where, b.origin(at)))


def _data_service(b: Builder, name: str, at: tuple) -> None:
    """Upstream's DataController starts `data-data` guards (its default spec: cpu 1, gpu 0, mem 10)."""
    spec = b.get(*at, "scheduling_spec")
    workers = b.get(*at, "num_dataset_workers", default=1)
    b.put(("roles", name, "replicas"), max(workers, 1) if isinstance(workers, int) else 1,
          at + ("num_dataset_workers",) if b.get(*at, "num_dataset_workers") is not None else at)
    if not isinstance(spec, dict):
        b.put(("roles", name, "cmd"), DATA_GUARD, origin=b.origin(at))
        b.put(("roles", name, "scheduling_spec"), {"cpu": 1, "mem": 10, "gpu": 0}, origin=b.origin(at))
        return
    where = at + ("scheduling_spec",)
    b.put(("roles", name, "cmd"), spec.get("cmd") or DATA_GUARD, where)
    b.put(("roles", name, "scheduling_spec", "gpu"), 0, where)
    for key, default in (("cpu", 1), ("mem", 10), ("port_count", None), ("image", None)):
        value = spec.get(key, default)
        if value is not None:
            b.put(("roles", name, "scheduling_spec", key), value, where + ((key,) if key in spec else ()))


def _unplanned_engines(b: Builder) -> None:
    known = {"actor", "critic", "ref", "rollout", "teacher", "train_dataset", "valid_dataset"}
    for key, value in (b.resolved.data or {}).items():
        if key not in known and isinstance(value, dict) and "backend" in value:
            b.note("W506", f"`{key}` has a backend but no upstream trainer creates it; it is not planned",
                   (key,), "if the training script starts it, add it as a role with --overlay", key=True)
