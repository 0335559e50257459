"""What every target folder carries: plan.json, the agent bundle (agent.pyz) and manifest.json.

Called by targets.render after the target's own module; it makes each folder self-contained."""
from __future__ import annotations

import hashlib

from areal_compiler.plan import Plan, canonical_json
from areal_compiler.targets import Artifact


def common_artifacts(plan: Plan, target: str, own: list[Artifact]) -> list[Artifact]:
    from areal_compiler.bundle import agent_bundle

    agent = agent_bundle()
    files = own + [Artifact("plan.json", plan.to_json().encode()), Artifact("agent.pyz", agent)]
    manifest = {
        "generated_by": "areal compile (do not edit; recompile the experiment instead)",
        "target": target,
        "experiment": f"{plan.experiment_name}/{plan.trial_name}",
        "experiment_sha256": plan.experiment_sha256,
        "agent_sha256": hashlib.sha256(agent).hexdigest(),
        "files": {a.path: hashlib.sha256(a.content).hexdigest() for a in sorted(files, key=lambda a: a.path)},
    }
    return sorted(files + [Artifact("manifest.json", canonical_json(manifest).encode())], key=lambda a: a.path)
