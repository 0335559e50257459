"""Which imported roles share devices, as upstream places them: colocation chains resolved to the role that owns
the devices, and colocated roles of another shape (AWEX) imported as separate roles on the same devices.

Called by importers/roles.py once every role is translated; sets compute.allow_device_sharing when roles share."""
from __future__ import annotations

from areal_compiler.importers.builder import Builder
from areal_compiler.spec.allocation import AllocationError
from areal_compiler.spec.shape import backend_shape, parse_role_backend


def settle_colocation(b: Builder, engines: dict) -> None:
    roles = b.data.get("roles", {})
    upstream_names = {e.at[0] if e.kind != "eval" else "eval-rollout": n for n, e in engines.items()}
    for name, role in roles.items():
        strategy = role.get("scheduling_strategy", {})
        if strategy.get("type") == "colocation" and strategy.get("target") not in roles:
            target = upstream_names.get(strategy.get("target"))
            if target in roles:  # a v2 engine's role is `<role>-guard` / `<role>-inf`
                strategy["target"] = target
    if _awex_colocate(b):
        _share(b, "rollout", "actor", "AWEX colocation (a v1 actor with weight_update_mode: awex) makes the "
                                      "rollout share the actor's devices", ("actor", "weight_update_mode"))
    for name in list(roles):
        strategy = roles[name].get("scheduling_strategy", {})
        target = strategy.get("target") if strategy.get("type") == "colocation" else None
        if target in roles and _shape(b, roles[name]) not in (None, _shape(b, roles[target])):
            _share(b, name, target, f"`{name}` is colocated with `{target}` but has another shape (upstream's "
                                    f"Slurm scheduler starts it on `{target}`'s nodes)",
                   engines[name].at + ("scheduling_strategy",) if name in engines else ())
    for name in list(roles):
        owner = _owner(roles, name)
        strategy = roles[name].get("scheduling_strategy", {})
        if owner is None or owner == strategy.get("target"):
            continue
        strategy["target"] = owner  # upstream's chain ends on the role whose workers hold the devices


def _awex_colocate(b: Builder) -> bool:
    """Upstream's rl_trainer: a v1 actor with weight_update_mode awex hands the devices between rollout and
    actor (AWEX), whatever their scheduling strategies say."""
    roles = b.data.get("roles", {})
    return ("actor" in roles and "rollout" in roles and b.get("actor", "_version", default="v1") == "v1"
            and b.get("actor", "weight_update_mode") == "awex")


def _share(b: Builder, name: str, target: str, why: str, at: tuple) -> None:
    """`name` becomes a role of its own placed on the same devices as `target` (compute.allow_device_sharing)."""
    roles = b.data["roles"]
    if name not in roles or target not in roles:
        return
    roles[name]["scheduling_strategy"] = {"type": "separation"}
    b.put(("compute", "allow_device_sharing"), True, at)
    b.sharing = b.sharing or f"{why}; imported as separate roles on the same devices"


def _owner(roles: dict, name: str) -> str | None:
    """The role at the end of `name`'s colocation chain (None when `name` is not colocated or the chain loops)."""
    seen, node = [name], name
    while True:
        strategy = roles[node].get("scheduling_strategy", {})
        if strategy.get("type") != "colocation":
            return node if node != name else None
        node = strategy.get("target")
        if node not in roles or node in seen:
            return None
        seen.append(node)


def _shape(b: Builder, role: dict) -> tuple[int, int] | None:
    backend = role.get("backend")
    if not isinstance(backend, str):
        return None
    per_node = b.get("cluster", "n_gpus_per_node", default=8)
    try:
        workers, per_worker, _ = backend_shape(parse_role_backend(backend), per_node if isinstance(per_node, int)
                                               else 8)
    except AllocationError:
        return None
    return workers, per_worker
