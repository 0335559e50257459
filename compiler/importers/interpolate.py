"""OmegaConf-style `${a.b.c}` interpolation over a loaded upstream config, remembering where each value came from.

Called by importers/areal.py; whole-value references copy mappings and lists, partial ones build strings."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from areal_compiler.diagnostics import Diagnostic, Span, did_you_mean
from areal_compiler.source import Source

REF = re.compile(r"(?<!\\)\$\{([^${}]*)\}")
WHOLE = re.compile(r"^\$\{([^${}]*)\}$")


@dataclass(frozen=True)
class Origin:
    """Where a value is written (file and span) and the references it travelled through to get here."""

    source: Source | None
    span: Span | None
    via: tuple[tuple[str, Span | None], ...] = ()  # ("${actor.backend}", span of the reference)
    label: str | None = None  # for values from the command line: the option that gave them


class InterpolationError(Exception):
    def __init__(self, diagnostic: Diagnostic, cycle: frozenset = frozenset()):
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic
        self.cycle = cycle


@dataclass(frozen=True)
class RunTime:
    """A value only the training script can know (`${oc.env:...}` and other resolvers): fine upstream, where the
    script resolves it on its node; an error only if the compiler needs the value (importers/builder.py)."""

    text: str


@dataclass
class Resolved:
    """The config with every reference replaced, plus the origin of every value and mapping key."""

    data: object
    origins: dict[tuple, Origin] = field(default_factory=dict)
    key_spans: dict[tuple, Span] = field(default_factory=dict)
    problems: list[Diagnostic] = field(default_factory=list)
    failed: set = field(default_factory=set)  # top-level keys whose resolution failed (they resolve to None)


def resolve(source: Source, defaults: dict | None = None, defaults_label: str = "upstream") -> Resolved:
    """Resolve every reference; each failing top-level key becomes one located error and resolves to None.
    `defaults`: what upstream's config class gives a key the file omits (a reference to it sees that value)."""
    resolver = _Resolver(source, defaults or {}, defaults_label)
    out = Resolved({}, resolver.origins, dict(source.key_spans))
    data = source.data if isinstance(source.data, dict) else {}
    cycles: set[frozenset] = set()
    for key in data:
        try:
            out.data[key] = resolver.value((key,))
        except InterpolationError as exc:
            if not exc.cycle or exc.cycle not in cycles:
                out.problems.append(exc.diagnostic)
            cycles.add(exc.cycle)
            out.data[key] = None
            out.failed.add(key)
            resolver.stack.clear()
    out.key_spans.update(resolver.key_spans)
    return out


def dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path)


class _Resolver:
    def __init__(self, source: Source, defaults: dict, defaults_label: str):
        self.source, self.defaults, self.defaults_label = source, defaults, defaults_label
        self.done: dict[tuple, object] = {}
        self.origins: dict[tuple, Origin] = {}
        self.key_spans: dict[tuple, Span] = {}
        self.stack: list[tuple] = []

    def error(self, code: str, message: str, at: tuple, hint: str | None = None) -> InterpolationError:
        return InterpolationError(self.source.diagnostic(code, message, at, hint))

    def value(self, path: tuple, asked_by: tuple | None = None, ref: str | None = None):
        """The resolved value at `path` (a path into the resolved tree)."""
        if path in self.done:
            return self.done[path]
        raw = self.source.data
        for i, key in enumerate(path):
            if isinstance(raw, str) and REF.search(raw):
                self.value(path[:i])  # an interpolated prefix: resolving it records its whole subtree
                if path in self.done:
                    return self.done[path]
                raise self._missing(path, path[:i], asked_by, ref)
            raw = _child(raw, key)
            if raw is _MISSING:
                default = _lookup(self.defaults, path) if asked_by is not None else _MISSING
                if default is _MISSING:
                    raise self._missing(path, path[:i], asked_by, ref)
                self.done[path] = default  # upstream's default: the file never wrote it, so it has no span
                return default
        return self._resolve(path, raw)

    def _missing(self, path: tuple, parent: tuple, asked_by: tuple | None, ref: str | None) -> InterpolationError:
        container = self.done.get(parent) if parent in self.done else _walk(self.source.data, parent)
        choices = [str(k) for k in container] if isinstance(container, dict) else []
        hint = did_you_mean(str(path[len(parent)]), choices) if choices else None
        what = f"`{ref}` refers to `{dotted(path)}`" if ref else f"`{dotted(path)}`"
        return self.error("E501", f"{what}, a key that does not exist", asked_by or path,
                          hint or "check the spelling; references are absolute, from the top of the file")

    def _resolve(self, path: tuple, raw):
        if path in self.stack:
            cycle = self.stack[self.stack.index(path):] + [path]
            exc = self.error("E502", "interpolation cycle: " + " -> ".join(dotted(p) for p in cycle), path,
                             "one of these values must be written out")
            exc.cycle = frozenset(cycle)
            raise exc
        self.stack.append(path)
        span = self.source.value_spans.get(path)
        if isinstance(raw, dict):
            value = {k: self.value(path + (k,)) for k in raw}
        elif isinstance(raw, list):
            value = [self.value(path + (i,)) for i in range(len(raw))]
        elif isinstance(raw, str) and REF.search(raw):
            value = self._interpolate(path, raw, span)
        elif isinstance(raw, str):
            value = raw.replace("\\${", "${")  # an escaped reference is literal text, as in OmegaConf
        else:
            value = raw
        self.stack.pop()
        self.done[path] = value
        self.origins.setdefault(path, Origin(self.source, span))
        return value

    def _interpolate(self, path: tuple, raw: str, span: Span | None):
        if any(":" in m.group(1) for m in REF.finditer(raw)):
            self._check_resolvers(raw, path)
            self.origins[path] = Origin(self.source, span)
            return RunTime(raw)
        whole = WHOLE.match(raw)
        if whole:
            target = self._target(whole.group(1), path)
            value = self.value(target, asked_by=path, ref=raw)
            self._copy(target, path, (raw, span))
            return value
        parts = []
        for match in REF.finditer(raw):
            target = self._target(match.group(1), path)
            part = self.value(target, asked_by=path, ref=match.group(0))
            if isinstance(part, RunTime):
                self.origins[path] = Origin(self.source, span, ((match.group(0), span),))
                return RunTime(raw)
            if isinstance(part, (dict, list)):
                raise self.error("E505", f"`{match.group(0)}` is a {'mapping' if isinstance(part, dict) else 'list'}"
                                 " and cannot be part of a string", path,
                                 "reference a single value, or make the whole value the reference")
            parts.append((match, "null" if part is None else str(part)))
        out, last = [], 0
        for match, text in parts:
            out.append(raw[last:match.start()])
            out.append(text)
            last = match.end()
        out.append(raw[last:])
        self.origins[path] = Origin(self.source, span, tuple((m.group(0), span) for m, _ in parts))
        return "".join(out).replace("\\${", "${")

    def _check_resolvers(self, raw: str, path: tuple) -> None:
        for match in REF.finditer(raw):
            name = match.group(1).split(":", 1)[0].strip()
            if not re.fullmatch(r"[A-Za-z_][\w.]*", name):
                raise self.error("E504", f"`{match.group(0)}` is not a valid resolver call", path,
                                 "write e.g. ${oc.env:HOME}")

    def _target(self, expr: str, path: tuple) -> tuple:
        expr = expr.strip()
        if not expr or expr.strip(".") == "":
            raise self.error("E504", f"`${{{expr}}}` is not a reference", path, "write e.g. ${actor.path}")
        dots = len(expr) - len(expr.lstrip("."))
        base = path[:-dots] if dots else ()
        if dots and len(path) - dots < 0:
            raise self.error("E501", f"`${{{expr}}}` climbs above the top of the file", path)
        keys = expr.lstrip(".").replace("[", ".").replace("]", "").split(".")
        if any(not k for k in keys):
            raise self.error("E504", f"`${{{expr}}}` is not a valid reference", path, "write e.g. ${actor.path}")
        return base + tuple(int(k) if k.isdigit() else k for k in keys)

    def _copy(self, target: tuple, path: tuple, ref: tuple[str, Span | None]) -> None:
        """The reference's subtree gets the target's values and origins, with this reference noted."""
        n = len(target)
        for key in [k for k in self.done if k[:n] == target and len(k) > n]:
            self.done[path + key[n:]] = self.done[key]
            origin = self.origins.get(key)
            if origin is not None:
                self.origins[path + key[n:]] = Origin(origin.source, origin.span, (ref,) + origin.via)
        for key, kspan in list(self.source.key_spans.items()) + list(self.key_spans.items()):
            if key[:n] == target and len(key) > n:
                self.key_spans.setdefault(path + key[n:], kspan)
        origin = self.origins.get(target)
        if origin is None and target in self.done:  # upstream's default: located at the reference to it
            self.origins[path] = Origin(self.source, ref[1], (ref,), label=f"{self.defaults_label}'s default "
                                                                           f"for `{dotted(target)}`")
            return
        self.origins[path] = Origin(self.source, origin.span if origin else None,
                                    (ref,) + (origin.via if origin else ()))


_MISSING = object()


def _child(node, key):
    if isinstance(node, dict):
        return node.get(key, _MISSING)
    if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
        return node[key]
    return _MISSING


def _lookup(node, path: tuple):
    for key in path:
        node = _child(node, key)
        if node is _MISSING:
            break
    return node


def _walk(node, path: tuple):
    found = _lookup(node, path)
    return None if found is _MISSING else found
