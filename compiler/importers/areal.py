"""Import an upstream AReaL experiment config: resolve `${...}`, translate the launch settings into our format.

Called by importers/__init__.py (from check.py's loading path); the result is an ImportedSource into the user's file."""
from __future__ import annotations

import hashlib
import re
import shlex

from areal_compiler.importers.builder import Builder
from areal_compiler.importers.config_class import ROLLOUT_ONLY, config_class
from areal_compiler.importers.imported import ImportedSource
from areal_compiler.importers.interpolate import Origin, resolve
from areal_compiler.importers.roles import translate_roles
from areal_compiler.importers.schema_check import Checker
from areal_compiler.source import Source
from areal_compiler.spec.allocation import AllocationError
from areal_compiler.spec.catalog import CATALOG
from areal_compiler.spec.shape import parse_role_backend
from areal_compiler.upstream import CONFIG_NAME  # the original config's name in every target folder

MAX_BASE_NAME = 52  # rules.py: <exp>-<trial>-<role> must fit generated Kubernetes names
SCHEDULER_TYPES = ("local", "ray", "slurm")


def import_areal(source: Source, raw: bytes, accelerator: str | None = None, driver: str | None = None,
                 targets: tuple[str, ...] = ()) -> ImportedSource:
    chosen = config_class(source.data, driver)
    b = Builder(source, resolve(source, chosen.tables.defaults(chosen.name), chosen.tables.label))
    if b.get("defaults") is not None:
        b.note("W501", "Hydra `defaults` are not followed: only this file is read, and required keys it lacks are "
                       "taken to come from the listed files", ("defaults",),
               "keys that live only in the listed files are not imported; the training script finds them relative "
               "to the config, so run it with the original file (--config PATH in --driver)", key=True)
    if chosen.problem:
        b.note("W512", f"{chosen.problem}; checked against {chosen.tables.label}'s {chosen.name} instead",
               (), "top-level keys that class lacks are taken as the script's own (warnings)")
    Checker(b, chosen).run()
    cpu_only = b.get("cluster", "n_gpus_per_node", default=8) == 0
    translate_roles(b, cpu_only, rollout_only=chosen.name == ROLLOUT_ONLY)
    _legacy_allocation(b)
    _cluster(b, accelerator)
    _names(b)
    _staleness(b, cpu_only)
    if driver is not None:
        _driver(b, driver)
    _default_target(b, targets)
    imported = b.finish({CONFIG_NAME: raw})
    nodes = b.get("cluster", "n_nodes")
    imported.cluster_nodes = nodes if isinstance(nodes, int) and not isinstance(nodes, bool) else None
    return imported


def _names(b: Builder) -> None:
    """Upstream's names become valid names of ours; when `<experiment>-<trial>-<role>` would not fit generated
    Kubernetes names, they are shortened deterministically (a hash of the original keeps them apart). The training
    script and upstream's processes still see the original names (the `areal` block)."""
    roles = list(b.data.get("roles", {})) or ["actor"]
    exp, trial = b.get("experiment_name"), b.get("trial_name")
    if not isinstance(exp, str) or not isinstance(trial, str):
        b.error("E513", "experiment_name and trial_name must be strings", ("experiment_name",))
        return
    new_exp = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", exp.lower())).strip("-")
    new_trial = re.sub(r"[^a-z0-9]", "", trial.lower())
    room = MAX_BASE_NAME - 2 - max(len(r) for r in roles)  # for `<experiment>-<trial>`
    shortened = {}
    if new_exp and new_trial and len(new_exp) + len(new_trial) > room:
        new_trial = _shorten(new_trial, trial, max(8, room - 16), "")
        new_exp = _shorten(new_exp, exp, room - len(new_trial), "-")
        shortened = {"experiment_name": new_exp != exp, "trial_name": new_trial != trial}
    for key, old, new in (("experiment_name", exp, new_exp), ("trial_name", trial, new_trial)):
        rule = ("lower-case letters, digits and `-`" if key == "experiment_name" else "lower-case letters and digits")
        if shortened.get(key):
            rule += ", shortened with a hash of the original so every generated Kubernetes name fits"
        if not new:
            b.error("E513", f"{key} `{old}` has no letters or digits to build a name from", (key,))
        elif new != old:
            b.note("W502", f"{key} `{old}` becomes `{new}` ({rule})", (key,),
                   "the training script still sees the original name in its config")
        b.put((key,), new or old, (key,))
        b.put(("areal", key), old, (key,))  # what upstream's processes are told: the config's own names


def _shorten(name: str, original: str, limit: int, joiner: str) -> str:
    """`name` itself when it fits `limit`, else a prefix and 6 hex digits of the original's hash."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(original.encode()).hexdigest()[:6]
    return name[:max(limit - len(digest) - len(joiner), 1)].rstrip("-") + joiner + digest


def _cluster(b: Builder, accelerator: str | None) -> None:
    nodes, per_node = b.get("cluster", "n_nodes", default=32), b.get("cluster", "n_gpus_per_node", default=8)
    for key, value in (("n_nodes", nodes), ("n_gpus_per_node", per_node)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0 or (key == "n_nodes" and value < 1):
            b.error("E514", f"cluster.{key} must be a {'positive' if key == 'n_nodes' else 'non-negative'} "
                            f"whole number, got {value!r}", ("cluster", key))
            return
    fileroot = b.get("cluster", "fileroot", default="/tmp/areal/")
    b.put(("fileroot",), fileroot, ("cluster", "fileroot") if b.get("cluster", "fileroot") else None)
    used = _devices_used(b)
    at = ("cluster", "n_gpus_per_node")
    if accelerator is not None:
        entry = CATALOG.get(accelerator)
        count = nodes * (entry.devices_per_node if entry else per_node)
        b.put(("compute", "accelerator"), accelerator, origin=Origin(None, None, label="--accelerator"))
    else:
        name, count = _derive(b, nodes, per_node)
        b.put(("compute", "accelerator"), name, at)
    b.put(("compute", "num_accelerators"), count, at)
    if used > count or b.sharing:
        why = b.sharing or ("`enable_offload: true` is upstream's opt-in to share devices"
                            if b.get("enable_offload") is True
                            else "upstream's local scheduler hands out devices round-robin, so roles share them")
        if not b.data.get("compute", {}).get("allow_device_sharing"):
            b.put(("compute", "allow_device_sharing"), True, ("enable_offload",) if b.get("enable_offload") else at)
        b.note("W503", f"roles use {used} devices on {count}: {why}; imported with compute.allow_device_sharing"
               if used > count else f"{why} (compute.allow_device_sharing)",
               at, "make sure the roles offload memory, or give the cluster more devices")
    _name_resolve(b)


def _derive(b: Builder, nodes: int, per_node: int) -> tuple[str, int]:
    """No accelerator type upstream: CPU for 0 devices, an Ascend 910B node for a config that sets Ascend's
    variables, else the generic GPU_<N>xANY (no model pinned)."""
    at = ("cluster", "n_gpus_per_node")
    if per_node == 0:
        b.note("W504", "accelerator type derived: CPU (cluster.n_gpus_per_node is 0)", at)
        return "CPU", 0
    ascend = _ascend_variable(b)
    name = f"NPU_{per_node}x910B" if ascend else f"GPU_{per_node}xANY"
    why = f"cluster.n_gpus_per_node is {per_node}" + (f" and the config sets Ascend's `{ascend}`" if ascend else "")
    if name not in CATALOG:
        b.error("E515", f"no accelerator type can be derived: {why}, and the catalog has no {name}", at,
                "name the node type with --accelerator, e.g. --accelerator GPU_8xH100 (see `areal catalog`)")
        return name, nodes * per_node
    model = "an Ascend 910B node" if ascend else "any GPU model, none pinned"
    b.note("W504", f"accelerator type derived: {name} ({why}; {model})", at,
           "pin the model with --accelerator, e.g. --accelerator GPU_8xH100 (see `areal catalog`)")
    return name, nodes * per_node


ASCEND_PREFIXES = ("HCCL_", "ASCEND_", "ACL_")  # set only for Huawei's CANN stack, never for NVIDIA's


def _ascend_variable(b: Builder) -> str | None:
    """The first Ascend-only environment variable an engine sets, unless the config also sets NCCL's (then it is
    written for both and says nothing)."""
    names = []
    for role in b.data.get("roles", {}).values():
        env = role.get("scheduling_spec", {}).get("env_vars")
        names += [str(key) for key in env] if isinstance(env, dict) else []
    if any(n.startswith("NCCL_") for n in names):
        return None
    return next((n for n in names if n.startswith(ASCEND_PREFIXES)), None)


def _devices_used(b: Builder) -> int:
    total = 0
    for role in b.data.get("roles", {}).values():
        colocated = role.get("scheduling_strategy", {}).get("type") == "colocation"
        if isinstance(role.get("backend"), str) and not colocated:
            try:
                total += parse_role_backend(role["backend"]).world
            except AllocationError:
                pass
    return total


def _name_resolve(b: Builder) -> None:
    """cluster.name_resolve becomes the `areal` block's: what upstream's workers and its controller are told."""
    at = ("cluster", "name_resolve")
    kind = b.get(*at, "type", default="nfs")
    if kind not in ("nfs", "etcd3", "ray"):
        b.error("E516", f"cluster.name_resolve.type `{kind}` is not one of nfs, etcd3, ray", at + ("type",))
        return
    root = b.get(*at, "nfs_record_root", default="/tmp/areal/name_resolve")
    if kind == "nfs" and not (isinstance(root, str) and root.startswith("/")):
        b.error("E516", f"cluster.name_resolve.nfs_record_root must be an absolute path, got {root!r}",
                at + ("nfs_record_root",))
        return
    for key in ("type", "nfs_record_root", "etcd3_addr"):
        if b.get(*at, key) is not None:
            b.put(("areal", "name_resolve", key), b.get(*at, key), at + (key,))


def _legacy_allocation(b: Builder) -> None:
    """Upstream's deprecated top-level allocation_mode: only its SPMD launchers read it; its loader still requires a
    `backend` in every engine (the schema check says which are missing)."""
    if b.get("allocation_mode"):
        b.note("W509", "`allocation_mode` is deprecated upstream and read only by its SPMD launchers: every engine "
                       "takes its own `backend`", ("allocation_mode",),
               "write each engine's backend (e.g. rollout.backend: \"sglang:d2\") and remove allocation_mode", key=True)


def _staleness(b: Builder, cpu_only: bool) -> None:
    roles = b.data.get("roles", {})
    if "rollout" not in roles and "rollout-inf" not in roles:
        return
    at = ("rollout",)
    b.put(("staleness", "max_head_offpolicyness"), b.get(*at, "max_head_offpolicyness", default=0),
          at + ("max_head_offpolicyness",) if b.get(*at, "max_head_offpolicyness") is not None else at)
    b.put(("staleness", "consumer_batch_size"), b.get(*at, "consumer_batch_size", default=1),
          at + ("consumer_batch_size",) if b.get(*at, "consumer_batch_size") is not None else at)
    for key in ("max_concurrent_rollouts", "queue_size"):
        value = b.get(*at, key)
        if value:  # 0 and null both mean "the default" upstream
            b.put(("staleness", key), value, at + (key,))
    trainer = next((r for r in ("actor", "actor-guard") if r in roles), None)
    if cpu_only and trainer:
        b.put(("staleness", "gate_role"), trainer, at)


def _driver(b: Builder, driver: str) -> None:
    try:
        argv = shlex.split(driver)
    except ValueError:
        argv = []
    if "--config" not in argv and not any(a.startswith("--config=") for a in argv):
        driver = f"{driver} --config {CONFIG_NAME}"
    origin = Origin(None, None, label="--driver")
    b.put(("driver", "cmd"), driver, origin=origin)
    b.put(("driver", "upstream"), "areal", origin=origin)  # run through run-trainer: the planned scheduler
    b.origins[("driver",)] = b.key_origins[("driver",)] = origin


def _default_target(b: Builder, targets: tuple[str, ...]) -> None:
    """scheduler.type names the target: a top-level block of its name makes it a default target (pipeline.py)."""
    kind = b.get("scheduler", "type")
    if kind is None or kind == "local":  # local is always a default target
        return
    if kind not in SCHEDULER_TYPES:
        b.error("E517", f"scheduler.type `{kind}` is not one of local, ray, slurm", ("scheduler", "type"))
    elif kind not in targets:
        b.note("W507", f"scheduler.type `{kind}`: the {kind} target is not available yet", ("scheduler", "type"),
               f"compile for {', '.join(targets)} with --target")
    elif not isinstance(b.data.get(kind), dict):
        b.put((kind,), {}, ("scheduler", "type"))
