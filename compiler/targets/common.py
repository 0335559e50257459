"""What every target folder carries: plan.json, the agent bundle (agent.pyz) and manifest.json.

Called by targets.render after the target's own module; it makes each folder self-contained."""
from __future__ import annotations

import hashlib
from functools import lru_cache

from areal_compiler.plan import Plan, canonical_json
from areal_compiler.targets import Artifact


@lru_cache(maxsize=1)
def _agent() -> tuple[bytes, str]:
    """The agent bundle and its sha256, built once per process (every target of every input carries them)."""
    from areal_compiler.bundle import agent_bundle

    agent = agent_bundle()
    return agent, hashlib.sha256(agent).hexdigest()


def common_artifacts(plan: Plan, target: str, own: list[Artifact]) -> list[Artifact]:
    agent, agent_sha256 = _agent()
    files = own + [Artifact("plan.json", plan.json_bytes), Artifact("agent.pyz", agent, shipped=True)]
    known = {id(agent): agent_sha256, id(plan.json_bytes): plan.json_sha256}  # hashed once, however many folders
    manifest = {
        "generated_by": "areal compile (do not edit; recompile the experiment instead)",
        "target": target,
        "experiment": f"{plan.experiment_name}/{plan.trial_name}",
        "experiment_sha256": plan.experiment_sha256,
        "agent_sha256": agent_sha256,
        "files": {a.path: known.get(id(a.content)) or hashlib.sha256(a.content).hexdigest()
                  for a in sorted(files, key=lambda a: a.path)},
    }
    site = plan.targets["slurm"].get("template")
    if site:  # the files the experiment names, compiled in: its hash covers them too
        manifest["inputs"] = {site["path"]: site["sha256"]}
    return sorted(files + [Artifact("manifest.json", canonical_json(manifest).encode())], key=lambda a: a.path)


def verify_folder(folder) -> dict:
    """A compiled target folder as compile wrote it: the manifest, with every file's sha256 as it says.

    Returns the manifest; raises ValueError naming the first file that is missing or was edited after compile
    (a hand-edited plan.json would otherwise run unchecked)."""
    import json
    from pathlib import Path

    folder = Path(folder)
    if not (folder / "plan.json").exists() and (folder.parent / "plan.json").is_file():
        raise ValueError(f"{folder} was compiled with --layout review, which is for reading (the plan once in "
                         f"{folder.parent}, no agent.pyz); compile the experiment with --layout bundle (the "
                         "default) to run or submit it")
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        files = manifest["files"]
        if not isinstance(files, dict) or not isinstance(manifest.get("target"), str):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"{folder} is not a compiled target folder (no usable manifest.json); pass an "
                         "experiment file or a folder `areal compile` wrote") from None
    for rel, digest in sorted(files.items()):
        path = folder / rel
        try:
            actual = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            raise ValueError(f"{path} is missing; recompile the experiment") from None
        if actual != digest:
            raise ValueError(f"{path} was changed after it was compiled (its sha256 differs from manifest.json); "
                             "recompile the experiment instead of editing compiled files")
    return manifest
