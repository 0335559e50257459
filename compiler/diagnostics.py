"""Located diagnostics: what is wrong, where (file:line:col), and how to fix it.

Produced by source.py, check.py and the spec models' mapping; printed by cli.py (human or JSON)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_WORD = 64  # characters of one value shown in a message; a longer one keeps its head and tail around "…"
MAX_MESSAGE = 1000  # characters of a whole message or hint
MAX_EXCERPT = 120  # characters of the source line shown around the caret
# What no message shows raw: control characters, line separators, lone surrogates, and the invisible format
# characters (bidirectional overrides such as U+202E, zero-width spaces and joiners, the byte order mark, tags) that
# would make an echoed name read differently than it is written.
UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff"
                         "\ufff9-\ufffb\ud800-\udfff\U000e0000-\U000e007f]")
LONG_WORD = re.compile(r"\S{%d,}" % (MAX_WORD + 1))


def printable(text: str) -> str:
    """TEXT with every unprintable or invisible character escaped (`\\n`, `\\u202e`): what any message echoes."""
    return UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii"), text)


def one_line(text: str) -> str:
    """Text safe inside a one-line diagnostic: line breaks and other unprintable characters escaped (`\\n`),
    every word over MAX_WORD characters shortened, the whole at most MAX_MESSAGE. The one place values
    echoed by any diagnostic are made short and printable."""
    text = printable(text)
    text = LONG_WORD.sub(lambda m: m.group()[:MAX_WORD - 12] + "…" + m.group()[-8:], text)
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 1] + "…"


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", one_line(self.message))
        object.__setattr__(self, "file", UNPRINTABLE.sub("?", self.file))
        if self.hint is not None:
            object.__setattr__(self, "hint", one_line(self.hint))

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
            text, col, length = excerpt(self.source_line.rstrip("\n").replace("\t", " "), self.span)
            lines.append(f" {number} | {text}")
            lines.append(f" {' ' * len(number)} | {' ' * (col - 1)}{'^' * length}")
        if self.hint:
            lines.append(f"  = hint: {self.hint}")
        return "\n".join(lines)


def excerpt(line: str, span: Span) -> tuple[str, int, int]:
    """At most MAX_EXCERPT characters of a source line around the caret: (text, caret column, caret length)."""
    line = UNPRINTABLE.sub("?", line)
    length = max(1, span.length)
    if len(line) <= MAX_EXCERPT:
        return line, span.col, length
    start = max(0, min(span.col - 1 - MAX_EXCERPT // 3, len(line) - MAX_EXCERPT))
    text = line[start:start + MAX_EXCERPT]
    text = ("…" + text[1:] if start else text)
    text = text[:-1] + "…" if start + MAX_EXCERPT < len(line) else text
    col = span.col - start
    return text, col, max(1, min(length, MAX_EXCERPT - col + 1))


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
    import difflib  # only for inputs with a mistake: not on the path of a valid one

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
