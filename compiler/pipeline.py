"""The one-way pipeline for one input: load -> check -> plan -> render, all in memory, never raising on bad input.

Called by cli.py (validate/plan/compile) and by the run and submit commands."""
from __future__ import annotations

from dataclasses import dataclass, field

from areal_compiler.check import Checked, check_file
from areal_compiler.diagnostics import Diagnostic
from areal_compiler.plan import Plan, PlanError, resolve
from areal_compiler.source import Source
from areal_compiler.targets import Artifact, TargetError, render


@dataclass
class Compiled:
    file: str
    diagnostics: list[Diagnostic]
    plan: Plan | None = None
    source: Source | None = None
    artifacts: dict[str, Artifact] = field(default_factory=dict)  # "<target>/<path>" -> artifact

    @property
    def ok(self) -> bool:
        return self.plan is not None and not any(d.is_error for d in self.diagnostics)


def plan_file(path: str) -> Compiled:
    checked: Checked = check_file(path)
    if not checked.ok:
        return Compiled(path, checked.diagnostics)
    try:
        plan = resolve(checked.experiment, checked.source)
    except PlanError as exc:
        return Compiled(path, checked.diagnostics + exc.diagnostics)
    return Compiled(path, checked.diagnostics, plan, checked.source)


def compile_file(path: str, targets: tuple[str, ...]) -> Compiled:
    result = plan_file(path)
    if result.ok:
        for target in targets:
            try:
                artifacts = render(result.plan, target)
            except TargetError as exc:  # a valid experiment this target cannot express: say where and why
                result.diagnostics.append(result.source.diagnostic("E490", f"{target}: {exc}", exc.path,
                                                                   key=bool(exc.path)))
                result.artifacts.clear()
                return result
            for artifact in artifacts:
                result.artifacts[f"{target}/{artifact.path}"] = artifact
    return result
