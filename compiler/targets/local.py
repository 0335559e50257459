"""The local target: a launch plan (launch.json) listing every process `areal run` starts on this machine.

Called by targets.render; executed by runs/local.py. Its format is targets/local_plan.py's models (the source of
schemas/local-plan.schema.json); it is written here as plain data, without building them."""
from __future__ import annotations

from areal_compiler.plan import Plan, canonical_json
from areal_compiler.targets import Artifact

NAME = "local"
ENTRY = "launch.json"
BACKEND = "areal_compiler.runs.local"
RUNS_HERE = True  # `areal run` and `areal start` use this target
LAUNCH_VERSION = 1


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


def check(plan: Plan) -> list:
    return []  # every plan runs on one machine


def render(plan: Plan, attachments: dict[str, bytes]) -> list[Artifact]:
    return [Artifact("launch.json", canonical_json(launch_plan(plan)).encode())]
