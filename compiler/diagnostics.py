"""Located diagnostics: what is wrong, where (file:line:col), and how to fix it.

Produced by source.py, check.py and the spec models' mapping; printed by cli.py (human or JSON)."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Span:
    """A 1-based position in a file; `length` is how many characters the caret underlines."""

    line: int
    col: int
    length: int = 1


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    file: str
    span: Span | None = None
    hint: str | None = None
    severity: str = "error"  # "error" | "warning"
    source_line: str | None = field(default=None, compare=False)

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def sort_key(self) -> tuple:
        span = self.span or Span(0, 0)
        return (self.file, span.line, span.col, self.code, self.message)

    def to_json(self) -> dict:
        out = {"code": self.code, "severity": self.severity, "message": self.message, "file": self.file}
        if self.span:
            out["line"], out["col"] = self.span.line, self.span.col
        if self.hint:
            out["hint"] = self.hint
        return out

    def render(self) -> str:
        where = self.file if self.span is None else f"{self.file}:{self.span.line}:{self.span.col}"
        lines = [f"{where}: {self.severity}[{self.code}]: {self.message}"]
        if self.span and self.source_line is not None:
            number = str(self.span.line)
            pad = " " * len(number)
            text = self.source_line.rstrip("\n").replace("\t", " ")
            lines.append(f" {number} | {text}")
            caret = " " * (self.span.col - 1) + "^" * max(1, self.span.length)
            lines.append(f" {pad} | {caret}")
        if self.hint:
            lines.append(f"  = hint: {self.hint}")
        return "\n".join(lines)


def sorted_diagnostics(diags: list[Diagnostic]) -> list[Diagnostic]:
    """Sorted by position, duplicates (same code at the same place) removed."""
    seen: set[tuple] = set()
    out = []
    for d in sorted(diags, key=Diagnostic.sort_key):
        key = d.sort_key()
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def did_you_mean(word: str, choices, cutoff: float = 0.6) -> str | None:
    """A hint naming the closest choices, or None. Case differences count as close."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    if word.lower() in lowered:
        return f"did you mean `{lowered[word.lower()]}`?"
    close = difflib.get_close_matches(word, choices, n=3, cutoff=cutoff)
    if not close:
        close = [lowered[c] for c in difflib.get_close_matches(word.lower(), list(lowered), n=3, cutoff=cutoff)]
    if not close:
        return None
    return "did you mean " + " or ".join(f"`{c}`" for c in close) + "?"
