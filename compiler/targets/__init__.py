"""Targets translate a plan into artifacts; one module per target, each with `render(plan) -> [Artifact]`.

Called by pipeline.py. Adding a target means adding its module here and its name to TARGETS."""
from __future__ import annotations

import importlib
from dataclasses import dataclass

TARGETS = ("local", "slurm")  # kubernetes and ray slot in here as one module each


class TargetError(ValueError):
    """The plan cannot be expressed in this target; `path` locates the experiment setting responsible."""

    def __init__(self, message: str, path: tuple = ()):
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class Artifact:
    path: str  # relative to the target's folder, with "/" separators
    content: bytes
    executable: bool = False


def render(plan, target: str) -> list[Artifact]:
    """The target's own artifacts plus what every target folder carries (plan, agent, manifest)."""
    from areal_compiler.targets.common import common_artifacts

    module = importlib.import_module(f"areal_compiler.targets.{target}")
    artifacts = module.render(plan)
    return common_artifacts(plan, target, artifacts)
