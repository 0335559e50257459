"""The Slurm target: one batch script, job.sbatch, that starts one agent per planned worker with srun.

Called by targets.render; submitted by runs/slurm.py (`areal submit`). Built from the plan only: a plain dict context
written out by targets/sbatch.py, where every value that reaches the shell goes through `q` (shlex.quote) and every
value in an `#SBATCH` line through `sbatch_value`. Role commands, env values and secrets are
never in the script: the agent reads them from plan.json (and the secret files) at run time.

Components. Each non-colocated role with processes becomes part of one heterogeneous-job component; roles whose
logical nodes overlap share one component (Slurm never gives two components of a het job the same node, so a
single-node experiment with two roles is one plain job with two steps). Components are ordered by their first
logical node, so component 0 (where the batch script runs) holds logical node 0. Per component and node the request
is the most any of its nodes needs: tasks, CPUs per task (the largest of its roles, forked colocated roles' CPUs and
memory added to their target's) and memory per node; devices are asked for by the whole node (a one-node experiment
may leave some idle, and upstream's Slurm scheduler, too, allocates only entire nodes).

Steps. One `srun` per role: `--distribution=arbitrary` with a per-role SLURM_HOSTFILE puts worker i exactly on the
host of its planned logical node, and the agent takes i from $SLURM_PROCID (`--worker ROLE/@SLURM_PROCID`). The step
asks for the role's own devices per node (`--gres=<gres>:<n>`, `--gres=none` for 0-device roles in a component that
has devices), so steps of one component get disjoint devices; the agent maps the step's visibility variable
(AREAL_ALLOCATED_DEVICES) onto its worker's planned devices (docs/plan-contract.md). When roles of one component
share devices (compute.allow_device_sharing), every step of that component asks for all of its devices per node with
`--overlap`, and devices map by their planned index.

Version-dependent flags, chosen by `slurm.version` (default 22.05) and never probed:
- heterogeneous jobs need 17.11; before 20.02 they are spelled `#SBATCH packjob`, `srun --pack-group=K` and
  `SLURM_JOB_NODELIST_PACK_GROUP_K`; from 20.02 `hetjob`, `--het-group=K`, `SLURM_JOB_NODELIST_HET_GROUP_K`.
- `srun --overlap` (steps sharing resources) exists from 20.11; before 20.11 steps shared them by default.
- devices are always requested with `--gres=<name>[:<type>]:<n>` per node: `--gpus-per-node` is understood only from
  19.05, names only GPUs (not Ascend NPUs) and behaves differently with typed gres; `--gres` works everywhere.
"""
from __future__ import annotations

import re

from areal_compiler.agent.contract import env_suffix
from areal_compiler.agent.lists import NODE_HOSTS, kept
from areal_compiler.plan import Plan
from areal_compiler.targets import Artifact, TargetError
from areal_compiler.targets.sbatch import check_site, script

NAME = "slurm"
ENTRY = "job.sbatch"
BACKEND = "areal_compiler.runs.slurm"
DEFAULT_VERSION = "22.05"
JOB_KEYS = ("partition", "account", "qos", "time", "constraint", "reservation", "exclusive", "nodelist", "exclude")
SAFE_SBATCH = re.compile(r"^[A-Za-z0-9_./:%@+,=\-]+$")
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
OPTION = re.compile(r"^[a-z][a-z-]*\Z")
LONGEST_ADDRESS = 255  # bytes of a host name or address (a DNS name: at most 253)


class SlurmRenderError(TargetError):
    """The plan cannot be expressed as an sbatch script (message says which field and why)."""


def version_tuple(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"([0-9]+)\.([0-9]+)", str(text))
    if not match:
        raise SlurmRenderError(f"slurm.version `{text}` is not MAJOR.MINOR")
    return int(match.group(1)), int(match.group(2))


def sbatch_option(key: str, value) -> str:
    """One `#SBATCH` option: `--key`, or `--key=value` with the value written by sbatch_value."""
    if not OPTION.match(key):
        raise SlurmRenderError(f"{key!r} is not an sbatch option and cannot be written into an #SBATCH line")
    return f"--{key}" if value is None else f"--{key}={sbatch_value(value)}"


def sbatch_value(value) -> str:
    """A value for an `#SBATCH --key=value` line: sbatch (not a shell) splits these lines on blanks and honours
    double quotes. Plain values stay as they are; others are double-quoted; what cannot be quoted is an error."""
    text = str(value)
    if SAFE_SBATCH.fullmatch(text):
        return text
    if not text or any(c in text for c in '"\n\r\\') or any(ord(c) < 32 for c in text):
        raise SlurmRenderError(f"{text!r} cannot be written into an #SBATCH line")
    return f'"{text}"'


def _components(plan: Plan, roles: list[str]) -> list[list[str]]:
    """Roles grouped by overlapping logical nodes, ordered by first node (then plan order inside)."""
    groups: list[tuple[set[int], list[str]]] = []
    for name in roles:
        nodes, members = set(plan.roles[name].nodes), [name]
        for group in [g for g in groups if g[0] & nodes]:
            groups.remove(group)
            nodes |= group[0]
            members = group[1] + members
        groups.append((nodes, members))
    ordered = sorted(groups, key=lambda g: min(g[0]))
    return [sorted(members, key=roles.index) for _, members in ordered]


def _forks_extra(plan: Plan, owner: str) -> tuple[int, int]:
    """CPUs and GB per task that forked colocated roles add to the processes of `owner`."""
    cpu = mem = 0
    for role in plan.roles.values():
        if role.colocated_with == owner and role.fork and role.workers:
            cpu, mem = cpu + role.cpu, mem + role.mem_gb
    return cpu, mem


def _gres(plan: Plan, count: int, typed: bool) -> str:
    acc = plan.accelerator
    name = acc.get("slurm_gres")
    if not name:
        raise SlurmRenderError(f"accelerator {acc.get('name')} has no Slurm gres name")
    if typed and acc.get("slurm_gres_type"):
        return f"{name}:{acc['slurm_gres_type']}:{count}"
    return f"{name}:{count}"


def _settings(plan: Plan, names: list[str]) -> dict:
    """Job-level slurm settings overridden by the roles' own (roles of one component must agree)."""
    job = plan.targets["slurm"]
    out = {k: job[k] for k in JOB_KEYS if job.get(k) is not None}
    seen: dict[str, tuple[str, object]] = {}
    for name in names:
        for key, value in plan.roles[name].slurm.items():
            if key in seen and seen[key][1] != value:
                raise SlurmRenderError(f"roles `{seen[key][0]}` and `{name}` share nodes (one Slurm component) but "
                                       f"set different slurm.{key}: {seen[key][1]!r} and {value!r}",
                                       ("roles", name, "slurm", key))
            seen[key] = (name, value)
            out[key] = value
    return out


def context(plan: Plan) -> dict:
    """Everything the template needs, as plain data."""
    job = plan.targets["slurm"]
    version = version_tuple(job.get("version", DEFAULT_VERSION))
    visibility = plan.accelerator.get("visibility_env")
    if visibility and not ENV_NAME.fullmatch(visibility):
        raise SlurmRenderError(f"visibility variable {visibility!r} is not an environment variable name")
    roles = [n for n, r in plan.roles.items() if r.colocated_with is None and r.workers > 0]
    if not roles:
        raise SlurmRenderError("the plan has no role with processes to start")
    groups = _components(plan, roles)
    if len(groups) > 1 and version < (17, 11):
        raise SlurmRenderError(f"slurm.version {job.get('version')} has no heterogeneous jobs (17.11+)",
                               ("slurm", "version"))
    run_parent = f"{plan.fileroot.rstrip('/') or '/'}/{plan.experiment_name}/{plan.trial_name}"
    workers = {n: sorted((w for w in plan.workers if w.role == n), key=lambda w: w.index) for n in roles}
    components, steps = [], []
    for k, names in enumerate(groups):
        component, shared = _component(plan, k, names, workers, run_parent, len(groups), version)
        components.append(component)
        steps += [_step(plan, k, name, workers[name], shared, len(groups), version) for name in names]
    used = {n for c in components for n in c["nodes"]}
    max_retries = int(job.get("max_retries", 0))
    in_files = _lists_in_files(steps, plan.nodes)
    for s in steps:
        s["hosts_in_file"] = f"AREAL_SLURM_HOSTS_{s['var']}" in in_files
    return {
        "experiment": f"{plan.experiment_name}/{plan.trial_name}",
        "sha256": plan.experiment_sha256,
        "run_id": plan.run_id,
        "slurm_version": job.get("version", DEFAULT_VERSION),
        "het": version >= (20, 2),
        "components": components,
        "steps": steps,
        "run_parent": run_parent,
        "nodes": list(range(plan.nodes)),
        "unused_nodes": [n for n in range(plan.nodes) if n not in used],
        "max_retries": max_retries,
        "node_hosts_in_file": NODE_HOSTS in in_files,
    }


def _lists_in_files(steps: list[dict], nodes: int) -> set[str]:
    """The host lists the script hands over in files (RUN_DIR/lists/<NAME>, named by <NAME>_FILE): the agent's rule
    (agent/lists.py) on the longest each can be, LONGEST_ADDRESS bytes and a comma per node, as the names are known
    only when the job runs. A list of up to 64 nodes stays in the environment, as do the lists of every small job."""
    counts = {f"AREAL_SLURM_HOSTS_{s['var']}": len(s["nodes"]) for s in steps}
    counts[NODE_HOSTS] = nodes
    return set(counts) - kept({name: n * (LONGEST_ADDRESS + 1) for name, n in counts.items()})


def _component(plan: Plan, k: int, names: list[str], workers: dict, run_parent: str, count: int,
               version: tuple[int, int]) -> tuple[dict, dict]:
    """One heterogeneous-job component: the #SBATCH lines of the roles sharing its nodes; plus what its steps
    need to know about it (devices per node, whether roles share devices)."""
    job = plan.targets["slurm"]
    nodes = sorted({n for name in names for n in plan.roles[name].nodes})
    per_node = {n: {"tasks": 0, "mem": 0, "devices": set(), "overlap": False} for n in nodes}
    cpus = 0
    for name in names:
        extra_cpu, extra_mem = _forks_extra(plan, name)
        cpus = max(cpus, plan.roles[name].cpu + extra_cpu)
        role_devs: dict[int, set] = {}
        for w in workers[name]:
            slot = per_node[w.node]
            slot["tasks"] += 1
            slot["mem"] += plan.roles[name].mem_gb + extra_mem
            role_devs.setdefault(w.node, set()).update(w.devices)
        for node, devs in role_devs.items():
            if per_node[node]["devices"] & devs:
                per_node[node]["overlap"] = True
            per_node[node]["devices"] |= devs
    tasks = sum(s["tasks"] for s in per_node.values())
    devices = max(len(s["devices"]) for s in per_node.values())
    label = "+".join(names)
    opts = {
        "job-name": f"{plan.experiment_name}_{plan.trial_name}:{label}",
        "nodes": str(len(nodes)),
        "ntasks": str(tasks),
        "cpus-per-task": str(cpus),
        "mem": f"{max(s['mem'] for s in per_node.values())}G",
        "output": f"{run_parent}/slurm-%j.out",
        "error": f"{run_parent}/slurm-%j.err",
    }
    if len({s["tasks"] for s in per_node.values()}) == 1:
        opts["ntasks-per-node"] = str(tasks // len(nodes))
    if devices:
        opts["gres"] = _gres(plan, plan.accelerator["devices_per_node"], bool(job.get("gres_type")))
    for key, value in _settings(plan, names).items():
        if value is True:
            opts[key] = None
        elif value is not False:
            opts[key] = str(value)
    max_retries = int(job.get("max_retries", 0))
    opts["requeue" if max_retries > 0 else "no-requeue"] = None
    if max_retries > 0:
        opts["open-mode"] = "append"  # a requeued attempt appends to the same slurm-<job>.out/.err
    options = sorted(opts.items(), key=lambda kv: sbatch_option(*kv))  # as sorted lines; checks every value
    group = "HET" if version >= (20, 2) else "PACK"
    component = {"index": k, "roles": names, "label": label, "nodes": nodes, "sbatch": options,
                 "nodelist_var": f"SLURM_JOB_NODELIST_{group}_GROUP_{k}" if count > 1 else "SLURM_JOB_NODELIST"}
    return component, {"devices": devices, "overlap": any(s["overlap"] for s in per_node.values())}


def _step(plan: Plan, k: int, name: str, ws: list, shared: dict, count: int, version: tuple[int, int]) -> dict:
    """One role's srun step inside component k: one task per worker, its own devices, wrapped for the agent."""
    job, role = plan.targets["slurm"], plan.roles[name]
    typed, visibility = bool(job.get("gres_type")), plan.accelerator.get("visibility_env")
    extra_cpu, extra_mem = _forks_extra(plan, name)
    mem_per_node: dict[int, int] = {}
    devs_per_node: dict[int, set] = {}
    for w in ws:
        mem_per_node[w.node] = mem_per_node.get(w.node, 0) + role.mem_gb + extra_mem
        devs_per_node.setdefault(w.node, set()).update(w.devices)
    role_devices = max(len(d) for d in devs_per_node.values())
    argv = ["srun"]
    if count > 1:
        argv.append(f"--{'het' if version >= (20, 2) else 'pack'}-group={k}")
    argv += [f"--nodes={len(role.nodes)}", f"--ntasks={len(ws)}", "--distribution=arbitrary",
             f"--cpus-per-task={role.cpu + extra_cpu}", f"--mem={max(mem_per_node.values())}G"]
    if shared["devices"]:
        if shared["overlap"]:
            argv.append(f"--gres={_gres(plan, shared['devices'], typed)}")
            if version >= (20, 11):
                argv.append("--overlap")
        elif role_devices:
            argv.append(f"--gres={_gres(plan, role_devices, typed)}")
        else:
            argv.append("--gres=none")
    argv += ["--kill-on-bad-exit=1", f"--job-name={plan.experiment_name}_{plan.trial_name}:{name}"]
    container = []
    if job.get("container_type", "none") == "apptainer":
        if not role.image:
            raise SlurmRenderError(f"slurm.container_type is apptainer but role `{name}` has no image",
                                   ("slurm", "container_type"))
        binds = ",".join(job.get("mount") or [])
        container = ["apptainer", "exec"] + (["--nv"] if visibility == "CUDA_VISIBLE_DEVICES" else []) \
            + (["--bind", binds] if binds else [])
    return {"role": name, "var": env_suffix(name), "workers": len(ws), "hosts": [w.node for w in ws],
            "nodes": role.nodes, "srun": argv, "visibility": visibility if role_devices else None,
            "container": container, "image": role.image or ""}


def render_script(plan: Plan) -> str:
    return script(context(plan), plan.targets["slurm"].get("template"))


def check(plan: Plan) -> list[TargetError]:
    try:
        context(plan)
    except TargetError as exc:
        return [exc]
    site = plan.targets["slurm"].get("template")
    return check_site(site) if site else []


def render(plan: Plan, attachments: dict[str, bytes]) -> list[Artifact]:
    return [Artifact("job.sbatch", render_script(plan).encode("utf-8"), executable=True)]
