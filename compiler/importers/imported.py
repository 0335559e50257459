"""A Source whose data is our experiment format but whose positions point into the user's original file(s).

Built by importers/areal.py; check, rules, plan and targets use it like any Source and never know the difference."""
from __future__ import annotations

from dataclasses import dataclass, field

from areal_compiler.diagnostics import Diagnostic, Span
from areal_compiler.importers.interpolate import Origin
from areal_compiler.source import Path_, Source


@dataclass
class ImportedSource(Source):
    """`origins` maps paths of OUR format to where the value was written; `attachments` travel with the artifacts."""

    origins: dict[tuple, Origin] = field(default_factory=dict)
    key_origins: dict[tuple, Origin] = field(default_factory=dict)
    upstream_paths: dict[tuple, str] = field(default_factory=dict)  # our path -> upstream dotted key
    attachments: dict[str, bytes] = field(default_factory=dict)  # file name -> bytes, for every target folder
    cluster_nodes: int | None = None  # upstream cluster.n_nodes

    @property
    def failed(self) -> bool:
        """The import itself reported an error: the translated data is not worth validating."""
        return any(d.is_error for d in self.problems)

    def origin_of(self, path: Path_, key: bool = False) -> tuple[tuple, Origin | None]:
        path = tuple(path)
        if key and path in self.key_origins:
            return path, self.key_origins[path]
        while path not in self.origins and path:
            path = path[:-1]
        return path, self.origins.get(path)

    def span_of(self, path: Path_, key: bool = False) -> Span | None:
        origin = self.origin_of(path, key)[1]
        return origin.span if origin else None

    def diagnostic(self, code: str, message: str, path: Path_ = (), hint: str | None = None,
                   key: bool = False, severity: str = "error", span: Span | None = None) -> Diagnostic:
        found, origin = self.origin_of(path, key)
        if origin is None:
            return Diagnostic(code, message, self.name, span, hint, severity)
        span = span or origin.span
        note = self._note(found, origin)
        if note:
            hint = f"{hint}; {note}" if hint else note
        if origin.source is None:  # a value given on the command line
            return Diagnostic(code, message, origin.label or self.name, None, hint, severity)
        return Diagnostic(code, message, origin.source.name, span, hint, severity,
                          origin.source.line(span.line) if span else None)

    def _note(self, path: tuple, origin: Origin) -> str | None:
        upstream = self.upstream_paths.get(path)
        parts = []
        if upstream and origin.label is None:
            parts.append(f"imported from `{upstream}`")
        for text, span in origin.via:
            parts.append(f"through `{text}`" + (f" at line {span.line}:{span.col}" if span else ""))
        if origin.label and origin.source is not None:
            parts.append(origin.label)
        return " ".join(parts) or None
