"""The one-way pipeline for one input: load -> check -> plan -> each target's check and render, all in memory.

Called by cli.py (validate, plan, compile) and the operator verbs; never raises on bad input. `validate` runs it
exactly as `compile` does and only skips the writing, so the two always agree."""
from __future__ import annotations

from dataclasses import dataclass, field

from areal_compiler import targets as registry
from areal_compiler.check import Checked, check_file
from areal_compiler.diagnostics import Diagnostic, Span
from areal_compiler.plan import Plan, PlanError, resolve
from areal_compiler.source import Source
from areal_compiler.targets import Artifact, InputError, TargetError, TargetWarning


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


def plan_file(path: str, name: str | None = None) -> Compiled:
    """Load, check and plan PATH; NAME is what diagnostics call the file (default: PATH)."""
    checked: Checked = check_file(path, name)
    file = path if name is None else name
    if not checked.ok:
        return Compiled(file, checked.diagnostics, source=checked.source)
    try:
        plan = resolve(checked.experiment, checked.source)
    except PlanError as exc:
        return Compiled(file, checked.diagnostics + exc.diagnostics, source=checked.source)
    return Compiled(file, checked.diagnostics, plan, checked.source)


def default_targets(result: Compiled) -> tuple[str, ...]:
    """Local (every experiment runs on one machine) and each target the experiment configures with a top-level
    block of its name; when none is configured, every target but those that must be asked for (ONLY_WHEN_ASKED,
    e.g. Kubernetes, which needs an image)."""
    data = result.source.data if result.source is not None else None
    named = [t for t in registry.names() if t != "local" and isinstance(data, dict) and t in data]
    return ("local", *named) if named else tuple(
        t for t in registry.names() if not getattr(registry.get(t), "ONLY_WHEN_ASKED", False))


def compile_file(path: str, targets: tuple[str, ...] | None = None, name: str | None = None) -> Compiled:
    """Plan PATH and render it for TARGETS (None: default_targets); every target's problems are reported
    together as located E490 diagnostics, and then no artifact is kept."""
    result = plan_file(path, name)
    if not result.ok:
        return result
    problems: list[tuple[str, TargetError]] = []
    for name in targets if targets is not None else default_targets(result):
        target = registry.get(name)
        found = target.check(result.plan)
        for exc in (w for w in found if isinstance(w, TargetWarning)):
            result.diagnostics.append(result.source.diagnostic("W490", f"{name}: {exc}", exc.path, key=bool(exc.path),
                                                               severity="warning"))
        found = [exc for exc in found if not isinstance(exc, TargetWarning)]
        if not found:
            try:
                for artifact in registry.render(result.plan, name, getattr(result.source, "attachments", None)):
                    result.artifacts[f"{name}/{artifact.path}"] = artifact
            except TargetError as exc:  # a check() that missed something: still located, never a traceback
                found = [exc]
        problems += [(name, exc) for exc in found]
    result.diagnostics += [_diagnostic(result.source, name, exc) for name, exc in problems]
    if problems:
        result.artifacts.clear()
    return result


def _diagnostic(source: Source, target: str, exc: TargetError) -> Diagnostic:
    """A target's problem, located at the experiment setting responsible (E490), or inside the file that
    setting names (InputError: E483 at a site template's own line)."""
    file = source.inputs.get(exc.path) if isinstance(exc, InputError) else None
    if file is not None:
        line = file.line(exc.line)
        return Diagnostic("E483", f"{target}: {exc}", file.name, Span(exc.line, 1, max(1, len(line or ""))),
                          exc.hint, source_line=line)
    from areal_compiler.importers.imported import ImportedSource  # only on this path: a compile stays light

    hint = (f"an upstream config has no `{exc.setting}`: give it with --overlay FILE, a YAML file holding "
            f"`{exc.setting}: ...`" if isinstance(source, ImportedSource) and exc.setting else None)
    return source.diagnostic("E490", f"{target}: {exc}", exc.path, hint, key=bool(exc.path))
