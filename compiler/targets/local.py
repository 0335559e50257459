"""The local target: a launch plan (launch.json) listing every process `areal run` starts on this machine.

Called by targets.render; executed by runs/local.py. Its format is targets/local_plan.py's models (the source of
schemas/local-plan.schema.json); it is written here as plain data, without building them. Every logical node runs
on this one host (at 127.0.0.1: no AREAL_NODE_HOSTS), so the agents move node n's ports past those of nodes
0..n-1, and its devices to n x devices_per_node + d when the host has a device for each (agent/plan.py
on_this_host); check() says whether the ports fit and that devices may be shared."""
from __future__ import annotations

from areal_compiler.plan import Plan
from areal_compiler.targets import Artifact, TargetError, TargetWarning

NAME = "local"
ENTRY = "launch.json"
BACKEND = "areal_compiler.runs.local"
RUNS_HERE = True  # `areal run` and `areal start` use this target
LAUNCH_VERSION = 1


def ports_on_this_host(plan: Plan) -> int:
    """How many ports the logical nodes use together on this one host (agent/plan.py on_this_host moves each
    node's ports past the previous nodes'; every node's planned ports start at base_port)."""
    base = plan.runtime["base_port"]
    return sum(max((p for w in node for p in (w.agent_port, *w.ports, *(q for f in w.forks for q in f.ports))),
                   default=base - 1) - base + 1 for node in plan.node_workers)


def launch_plan(plan: Plan) -> dict:
    """launch.json's data: local_plan.LaunchPlan's fields (heartbeat_interval a float, as that model makes it)."""
    visibility = plan.accelerator["visibility_env"]
    processes = []
    for w in plan.workers:
        name = f"{w.role}/{w.index}"
        env = {}  # no AREAL_NODE_HOSTS: the agent then places every logical node on this machine (127.0.0.1)
        if visibility:
            env[visibility] = ",".join(str(d) for d in w.devices)
        log = f"logs/{w.role}/{w.index}.log"
        processes.append({
            "name": name, "role": w.role, "index": w.index, "devices": list(w.devices),
            "argv": ["python3", "-I", "{target_dir}/agent.pyz", "supervise", "--plan", "{target_dir}/plan.json",
                     "--worker", name, "--run-dir", "{run_dir}", "--log", "{run_dir}/" + log],
            "env": env, "log": log, "forks": [f"{f.role}/{f.index}" for f in w.forks]})
    return {"launch_version": LAUNCH_VERSION, "run_id": plan.run_id,
            "run_name": f"{plan.experiment_name}/{plan.trial_name}", "fail_fast": plan.targets["local"]["fail_fast"],
            "heartbeat_interval": float(plan.runtime["heartbeat_interval"]), "processes": processes}


def check(plan: Plan) -> list[TargetError]:
    """Every logical node's ports must fit on this one host; devices shared between nodes are a warning."""
    from areal_compiler.plan.build import LAST_PORT

    if plan.nodes < 2:
        return []
    found: list[TargetError] = []
    base, ports = plan.runtime["base_port"], ports_on_this_host(plan)
    if base + ports - 1 > LAST_PORT:
        lowest = LAST_PORT + 1 - ports
        fix = f"set runtime.base_port to at most {lowest}" if lowest >= 1024 else \
            "compile it for a cluster target (--target slurm, kubernetes or ray)"
        found.append(TargetError(f"runs all {plan.nodes} logical nodes on this host: their {ports} ports from "
                                 f"base_port {base} go past {LAST_PORT}; {fix}", ("runtime", "base_port")))
    per_node = plan.accelerator["devices_per_node"]
    if per_node and any(w.devices for w in plan.workers):
        kind = plan.accelerator["name"].split("_")[0]
        found.append(TargetWarning(
            f"runs the {plan.nodes} logical nodes on this one host: they get devices of their own when it has "
            f"{plan.nodes * per_node} {kind} devices (node n's device d becomes n x {per_node} + d), else every "
            f"node uses devices 0-{per_node - 1} and roles on different nodes share them", ("compute", "num_accelerators")))
    return found


def render(plan: Plan, attachments: dict[str, bytes]) -> list[Artifact]:
    from areal_compiler.canonical import canonical_json

    return [Artifact("launch.json", canonical_json(launch_plan(plan)).encode())]
