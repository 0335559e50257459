"""The target registry: each target is one module (name, entry file, check, render, run backend), imported when used.

Called by the pipeline (check and render), the output writer and the operator verbs (which backend runs a folder)."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

# name -> module; a module defines NAME, ENTRY, BACKEND, check(plan) and render(plan, attachments), which returns
# its own artifacts (attachments: files such as an imported config, which every folder carries anyway)
_MODULES: dict[str, str] = {
    "local": "areal_compiler.targets.local",
    "slurm": "areal_compiler.targets.slurm",
    "kubernetes": "areal_compiler.targets.kubernetes",
    "ray": "areal_compiler.targets.ray",
}


class TargetError(ValueError):
    """A plan this target cannot express; `path` locates the experiment setting responsible, `setting` names the
    top-level key that would fix it (an imported config, which cannot hold it, gets it from an --overlay)."""

    def __init__(self, message: str, path: tuple = (), setting: str | None = None):
        super().__init__(message)
        self.path, self.setting = path, setting


class TargetWarning(TargetError):
    """What a target can express but what will not work there as written (a located warning): the artifacts are
    still written."""


class InputError(TargetError):
    """A problem inside a file the experiment names (a site template), at `line` of the file that the setting at
    `path` names."""

    def __init__(self, message: str, path: tuple, line: int, hint: str | None = None):
        super().__init__(message, path)
        self.line, self.hint = line, hint


@dataclass(frozen=True)
class Artifact:
    path: str  # relative to the target's folder, with "/" separators
    content: bytes
    executable: bool = False
    shipped: bool = False  # the same bytes for every experiment (runtime code areal ships): pinned by hash in review


class UnknownTarget(KeyError):
    pass


def names() -> tuple[str, ...]:
    return tuple(_MODULES)


def register(name: str, module: str) -> None:
    """Add a target by module name (plug-ins and tests); the module is imported on first use."""
    _MODULES[name] = module


def get(name: str) -> ModuleType:
    if name not in _MODULES:
        raise UnknownTarget(name)
    return importlib.import_module(_MODULES[name])


def this_machine() -> str:
    """The target that runs a job on this machine (`areal run` and `areal start`)."""
    return next(name for name in _MODULES if getattr(get(name), "RUNS_HERE", False))


def render(plan, name: str, attachments: dict[str, bytes] | None = None) -> list[Artifact]:
    """The target's own artifacts plus what every target folder carries (plan, agent, manifest, and attachments
    such as an imported upstream config, byte for byte).

    Raises TargetError for the first problem; callers run check() first to report every problem."""
    from areal_compiler.targets.common import common_artifacts

    attachments = dict(sorted((attachments or {}).items()))
    extra = [Artifact(path, data) for path, data in attachments.items()]
    return common_artifacts(plan, name, get(name).render(plan, attachments) + extra)
