"""The translation workspace: our experiment data being built, each value's origin, and the import's diagnostics.

Used by importers/areal.py and importers/roles.py; `finish()` turns it into an ImportedSource."""
from __future__ import annotations

from areal_compiler.diagnostics import Diagnostic
from areal_compiler.importers.imported import ImportedSource
from areal_compiler.importers.interpolate import Origin, Resolved, RunTime, dotted
from areal_compiler.source import Source


class Builder:
    def __init__(self, source: Source, resolved: Resolved):
        self.source = source
        self.resolved = resolved
        self.data: dict = {}
        self.origins: dict[tuple, Origin] = {}
        self.key_origins: dict[tuple, Origin] = {}
        self.upstream: dict[tuple, str] = {}
        self.diagnostics: list[Diagnostic] = list(resolved.problems)
        self.sharing: str | None = None  # why imported roles share devices (importers/sharing.py), for W503

    def get(self, *path, default=None):
        """The resolved upstream value at path (None-safe)."""
        node = self.resolved.data
        for key in path:
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
                node = node[key]
            else:
                return default
        return node

    def origin(self, upstream: tuple) -> Origin | None:
        path = tuple(upstream)
        while path and path not in self.resolved.origins:
            path = path[:-1]
        return self.resolved.origins.get(path)

    def put(self, ours: tuple, value, upstream: tuple | None = None, origin: Origin | None = None) -> None:
        """Set our value at `ours`; its positions (and its children's) come from `upstream` or `origin`."""
        late = _run_time(value)
        if late is not None and upstream is not None:
            self.error("E503", f"`{late.text}` is resolved only when the training script starts, but the compiler "
                               "needs this value now", tuple(upstream), "write the value into the config")
        node = self.data
        for key in ours[:-1]:
            node = node.setdefault(key, {})
        node[ours[-1]] = value
        if upstream is not None:
            self._map(ours, tuple(upstream))
        elif origin is not None:
            self.origins[ours] = origin

    def _map(self, ours: tuple, upstream: tuple) -> None:
        found = self.origin(upstream)
        if found is not None:
            self.origins[ours] = found
        self.upstream[ours] = dotted(upstream)
        key_span = self.resolved.key_spans.get(upstream)
        if key_span is not None:
            self.key_origins[ours] = Origin(self.source, key_span)
        n = len(upstream)
        for path, origin in self.resolved.origins.items():
            if path[:n] == upstream and len(path) > n:
                self.origins[ours + path[n:]] = origin
                self.upstream[ours + path[n:]] = dotted(path)

    def locate(self, ours: tuple, upstream: tuple) -> None:
        """Messages about `ours` (not a value of its own) point at the upstream block it was made from."""
        found, key_span = self.origin(upstream), self.resolved.key_spans.get(tuple(upstream))
        if found is not None:
            self.origins.setdefault(ours, found)
        if key_span is not None:
            self.key_origins.setdefault(ours, Origin(self.source, key_span))
        self.upstream.setdefault(ours, dotted(upstream))

    def where(self, *upstream) -> tuple:
        """The longest prefix of an upstream path that exists, to locate a message about it."""
        path = tuple(upstream)
        while path and self.get(*path, default=_ABSENT) is _ABSENT:
            path = path[:-1]
        return path

    def note(self, code: str, message: str, upstream: tuple, hint: str | None = None, severity: str = "warning",
             key: bool = False) -> None:
        path = self.where(*upstream)
        span = self.resolved.key_spans.get(path) if key else None
        origin = self.origin(path)
        span = span or (origin.span if origin else None)
        self.diagnostics.append(self.source.diagnostic(code, message, path, hint, severity=severity, span=span))

    def error(self, code: str, message: str, upstream: tuple, hint: str | None = None, key: bool = False) -> None:
        self.note(code, message, upstream, hint, "error", key)

    def finish(self, attachments: dict[str, bytes]) -> ImportedSource:
        out = ImportedSource(self.source.name, self.source.text, self.data, problems=list(self.diagnostics),
                             origins=self.origins, key_origins=self.key_origins, upstream_paths=self.upstream,
                             attachments=attachments)
        out.value_spans = {p: o.span for p, o in self.origins.items() if o.span and o.source is self.source}
        out.key_spans = {p: o.span for p, o in self.key_origins.items() if o.span}
        return out


_ABSENT = object()


def _run_time(value) -> RunTime | None:
    if isinstance(value, RunTime):
        return value
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return next((found for found in map(_run_time, children) if found is not None), None)
