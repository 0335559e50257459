"""Upstream engine blocks -> our roles, as upstream's trainers and controllers create them (domain.md section 9).

Called by importers/areal.py; role names, worker counts and per-worker resources follow upstream's controllers
(v1: the engine's RPC servers; v2: `<role>-guard` / `<role>-inf` guards); importers/sharing.py then settles
which roles share devices."""
from __future__ import annotations

from dataclasses import dataclass

from areal_compiler.importers.builder import Builder
from areal_compiler.importers.sharing import settle_colocation
from areal_compiler.spec.allocation import AllocationError
from areal_compiler.spec.shape import parse_role_backend

RPC_SERVER = "python3 -m areal.infra.rpc.rpc_server"
DATA_GUARD = "python3 -m areal.infra.rpc.guard"  # upstream's default data-service guard command
V2_TRAIN_GUARD = "python -m areal.v2.training_service.guard"  # GatewayTrainController: role `<role>-guard`
V2_INF_GUARD = "python -m areal.v2.inference_service.guard"  # RolloutControllerV2: role `<role>-inf`
SPEC_KEYS = {"cpu", "mem", "port_count", "image", "env_vars"}
SLURM_SPEC_KEYS = {"nodelist", "exclude", "reservation", "exclusive"}
SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD")


@dataclass(frozen=True)
class Engine:
    name: str  # our role's name, as upstream's controller names it
    at: tuple  # upstream path of the engine block
    kind: str  # training | inference | eval | data
    v2: bool = False


def upstream_roles(b: Builder, rollout_only: bool = False) -> list[Engine]:
    """The roles in the order upstream's trainer creates them."""
    online = b.get("rollout", "agent", "mode") == "online"
    rl = isinstance(b.get("rollout"), dict)
    if rollout_only:  # a rollout-only script starts its rollout controller and nothing else
        return [_named("rollout", ("rollout",), "inference", b)]
    out = []
    if isinstance(b.get("train_dataset"), dict) and not online and \
            b.get("train_dataset", "scheduling_spec", default=()) is not None:
        out.append(Engine("data-data", ("train_dataset",), "data"))
    out.append(_named("actor", ("actor",), "training", b))
    if isinstance(b.get("critic"), dict):
        out.append(_named("critic", ("critic",), "training", b))
    if isinstance(b.get("ref"), dict):
        kl_ctl = b.get("actor", "kl_ctl", default=0.1)  # upstream's default kl_ctl is 0.1
        if not rl or (isinstance(kl_ctl, (int, float)) and kl_ctl > 0):
            out.append(_named("ref", ("ref",), "training", b))
    teacher = b.get("teacher")
    kind = teacher.get("engine_type", "rollout") if isinstance(teacher, dict) else None
    if kind == "train":
        out.append(_named("teacher", ("teacher", "train"), "training", b))
    if rl:
        rollout = _named("rollout", ("rollout",), "inference", b)
        out.append(rollout)
        if not online:
            out.append(Engine("eval-rollout-inf" if rollout.v2 else "eval-rollout", ("rollout",), "eval",
                              rollout.v2))
    if kind == "rollout":
        out.append(_named("teacher", ("teacher", "rollout"), "inference", b))
    return out


def _named(role: str, at: tuple, kind: str, b: Builder) -> Engine:
    v2 = b.get(*at, "_version") == "v2"
    return Engine(f"{role}{'-guard' if kind == 'training' else '-inf'}" if v2 else role, at, kind, v2)


def translate_roles(b: Builder, cpu_only: bool, rollout_only: bool = False) -> None:
    """Every role runs upstream's worker command, which upstream's schedulers give their arguments to (upstream:
    areal): its spec `cmd`, the RPC server or the data-service guard by default; v2 engines run v2 guards."""
    for block in ("cluster", "scheduler", "rollout", "train_dataset"):
        if b.get(block) is not None and not isinstance(b.get(block), dict):
            b.error("E511", f"`{block}` must be a mapping", (block,))
    engines = upstream_roles(b, rollout_only)
    for engine in engines:
        if not isinstance(b.get(*engine.at), dict):
            continue  # the schema check says what is missing or malformed
        if engine.kind == "data":
            _data_service(b, engine.name, engine.at)
        elif engine.kind == "eval":
            _eval_rollout(b, engine)
        else:
            _engine(b, engine, cpu_only)
        if engine.name in b.data.get("roles", {}):
            b.put(("roles", engine.name, "upstream"), "areal", origin=b.origin(engine.at))
            b.locate(("roles", engine.name), engine.at)  # a message about the role points at its engine block
    settle_colocation(b, {e.name: e for e in engines})
    _unplanned_engines(b)


def _engine(b: Builder, engine: Engine, cpu_only: bool) -> None:
    name, at, kind = engine.name, engine.at, engine.kind
    backend = b.get(*at, "backend")
    if not isinstance(backend, str):
        return  # the schema check reports a missing or malformed backend
    per_worker = _per_worker(backend, b, engine.v2) if kind == "inference" else 1
    if cpu_only:  # CPU nodes: the backend's worker count, no devices
        workers = _workers(backend, kind)
        if workers is not None:
            b.put(("roles", name, "replicas"), workers, at + ("backend",))
    else:
        b.put(("roles", name, "backend"), backend, at + ("backend",))
    _spec(b, name, at, per_worker, V2_INF_GUARD if engine.v2 and kind == "inference" else
          V2_TRAIN_GUARD if engine.v2 else None)
    _strategy(b, name, at)


def _per_worker(backend: str, b: Builder, v2: bool) -> int:
    """Upstream's rollout controllers scale cpu and mem by an instance's t*p (v1), or by the devices of one guard,
    t*p split over the nodes an instance larger than a node spans (v2)."""
    try:
        single = parse_role_backend(backend)
    except AllocationError:
        return 1
    size = single.dims.t * single.dims.p
    per_node = b.get("cluster", "n_gpus_per_node", default=8)
    if v2 and isinstance(per_node, int) and per_node > 0 and size > per_node and size % per_node == 0:
        return per_node
    return size


def _workers(backend, kind: str) -> int | None:
    try:
        single = parse_role_backend(backend)
    except (AllocationError, TypeError):
        return None
    return single.dims.d if kind == "inference" else single.world


def _spec(b: Builder, name: str, at: tuple, scale: int, guard: str | None) -> None:
    """The first scheduling_spec entry (upstream's worker spec) -> our role's scheduling_spec and Slurm settings.
    A v2 engine's controller replaces the command with its guard's."""
    specs = b.get(*at, "scheduling_spec")
    if isinstance(specs, dict):
        specs = [specs]  # the schema check refuses it; translate what it says anyway
    if not (isinstance(specs, list) and specs and isinstance(specs[0], dict)):
        b.put(("roles", name, "cmd"), guard or RPC_SERVER, origin=b.origin(at))
        return
    spec, where = specs[0], at + ("scheduling_spec", 0)
    if not isinstance(b.get(*at, "scheduling_spec"), list):
        where = at + ("scheduling_spec",)
    b.put(("roles", name, "cmd"), guard or spec.get("cmd") or RPC_SERVER, where + ("cmd",))
    for key, value in spec.items():
        if value is None:
            continue
        if key in SPEC_KEYS:
            if key in ("cpu", "mem") and isinstance(value, int) and not isinstance(value, bool):
                value *= scale
            if key == "env_vars" and isinstance(value, dict):
                value = {k: _env_text(v) for k, v in value.items()}
                _secret_warnings(b, where + ("env_vars",), value)
            b.put(("roles", name, "scheduling_spec", key), value, where + (key,))
        elif key in SLURM_SPEC_KEYS and value is not False:
            b.put(("roles", name, "slurm", key), value, where + (key,))  # upstream passes them to the role's sbatch
        elif key in ("container_type", "mount"):
            value = [m for m in str(value).split(",") if m] if key == "mount" else value
            b.put(("slurm", key), value, where + (key,))
        elif key in ("additional_bash_cmds", "srun_additional_args") and value:
            b.note("W505", f"`{key}` is not carried over: areal compile never runs configuration text as shell",
                   where + (key,), "install what it sets up into the image, run it in the role's own program, or "
                                   "put a site's own set-up in a Slurm site template (slurm.template)",
                   key=True)


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


def _eval_rollout(b: Builder, engine: Engine) -> None:
    """v1: upstream's PPO trainer forks eval-rollout workers onto the rollout servers (gpu 0, colocated). v2: the
    eval RolloutControllerV2 starts one `eval-rollout-inf` guard per rollout instance (gpu 0, placed anywhere)."""
    name, at = engine.name, engine.at
    rollout = "rollout-inf" if engine.v2 else "rollout"
    spec = b.data.get("roles", {}).get(rollout, {}).get("scheduling_spec", {})
    if engine.v2:
        try:
            instances = parse_role_backend(b.get(*at, "backend")).dims.d
        except (AllocationError, TypeError):
            return
        b.put(("roles", name, "replicas"), instances, at + ("backend",))
        b.put(("roles", name, "cmd"), V2_INF_GUARD, origin=b.origin(at))
        b.put(("roles", name, "scheduling_spec", "gpu"), 0, origin=b.origin(at))
        sources = _first_spec(b, at)
        for key in ("cpu", "mem", "port_count"):
            if key in sources:
                b.put(("roles", name, "scheduling_spec", key), sources[key], at + ("scheduling_spec", 0, key))
        return
    b.put(("roles", name, "scheduling_strategy"), {"type": "colocation", "target": rollout}, origin=b.origin(at))
    for key in ("cpu", "mem", "port_count"):
        if key in spec:
            where = ("roles", rollout, "scheduling_spec", key)
            b.put(("roles", name, "scheduling_spec", key), spec[key], origin=b.origins.get(where, b.origin(at)))


def _first_spec(b: Builder, at: tuple) -> dict:
    specs = b.get(*at, "scheduling_spec")
    return specs[0] if isinstance(specs, list) and specs and isinstance(specs[0], dict) else {}


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
