"""YAML loading that remembers where every key and value came from (file:line:col).

Called by check.py first; everything after it works on plain data plus these positions."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from areal_compiler.agent.files import NotRegularFile, TooLarge, read_bytes
from areal_compiler.diagnostics import Diagnostic, Span

MAX_BYTES = 4 * 1024 * 1024  # an experiment file is a few KiB; 4 MiB is generous
MAX_DEPTH = 64  # nesting levels
MAX_NODES = 200_000  # values after alias expansion (stops alias bombs)
MAX_TEXT = 16 * 1024  # characters in one key or string value (a long command line is a few hundred)
# What YAML allows in a file; an escape (`"\ud800"`, `"\0"`) must not bring in anything else: such a character
# cannot be printed, encoded as UTF-8, or passed in argv and the environment.
NOT_TEXT = re.compile("[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")
ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)", re.S)



class Loader(yaml.SafeLoader):
    """PyYAML's safe loader, which also reads YAML 1.2 exponent numbers (`1e300`, `1E-9`) as numbers:
    YAML 1.1 wants a dot and a signed exponent, so they would be text and `1e300` would be "got string"."""


# libyaml's parser and composer with the same resolvers: only a speed-up. It reads only files it reads exactly
# like the pure-Python loader; anything it refuses or might read differently goes through `Loader` instead,
# so every diagnostic comes from one place (tests compare both paths on the same inputs).
CLoader = type("CLoader", (yaml.CSafeLoader,), {}) if getattr(yaml, "__with_libyaml__", False) else None
# Where PyYAML and libyaml differ (found by the differential tests): tabs, `?` in flow plain scalars, a comment
# glued to a block scalar header, byte-order marks and Unicode line breaks inside the text. Such files, and files
# without a final line break (whose last collection ends elsewhere in libyaml), take the pure-Python path.
PYTHON_ONLY = re.compile("[\t?\ufeff\x85\u2028\u2029]|[|>][-+0-9]*#")
for _loader in (Loader, CLoader) if CLoader else (Loader,):
    _loader.add_implicit_resolver("tag:yaml.org,2002:float",
                                  re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
                                  list("-+0123456789."))

Path_ = tuple  # a path into the data: ("roles", "actor", "backend") or ("x", 0)


class SourceError(Exception):
    """Raised while loading; carries the one diagnostic that explains why the file cannot be read."""

    def __init__(self, diagnostic: Diagnostic):
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


@dataclass
class Source:
    """A loaded YAML file: plain data plus the span of every value and every mapping key."""

    name: str
    text: str
    data: object
    value_spans: dict[Path_, Span] = field(default_factory=dict)
    key_spans: dict[Path_, Span] = field(default_factory=dict)
    problems: list[Diagnostic] = field(default_factory=list)  # non-fatal load problems (duplicate keys)
    inputs: dict = field(default_factory=dict)  # setting path -> inputs.InputFile: files the experiment names

    def line(self, number: int) -> str | None:
        lines = self.text.splitlines()
        return lines[number - 1] if 0 < number <= len(lines) else None

    def span_of(self, path: Path_, key: bool = False) -> Span | None:
        """The span of the value (or key) at path; falls back to the nearest enclosing value."""
        if key and tuple(path) in self.key_spans:
            return self.key_spans[tuple(path)]
        path = tuple(path)
        while path not in self.value_spans and path:
            path = path[:-1]
        return self.value_spans.get(path)

    def diagnostic(self, code: str, message: str, path: Path_ = (), hint: str | None = None,
                   key: bool = False, severity: str = "error", span: Span | None = None) -> Diagnostic:
        span = span or self.span_of(path, key=key)
        return Diagnostic(code, message, self.name, span, hint, severity,
                          self.line(span.line) if span else None)


def _fail(name: str, code: str, message: str, hint: str | None = None, span: Span | None = None,
          text: str = "") -> SourceError:
    line = None
    if span and text:
        lines = text.splitlines()
        line = lines[span.line - 1] if 0 < span.line <= len(lines) else None
    return SourceError(Diagnostic(code, message, name, span, hint, "error", line))


def read_text(path: Path, name: str) -> str:
    """Read a file as strict UTF-8 text, turning every way that can fail into a located error.

    At most MAX_BYTES + 1 bytes are read, and only from a regular file: /dev/zero or a FIFO is refused, never read."""
    if not path.exists():
        raise _fail(name, "E101", "no such file", "check the path")
    if path.is_dir():
        raise _fail(name, "E101", "is a directory, not a YAML file", f"pass a file inside it, e.g. {name}/*.yaml")
    try:
        raw = read_bytes(str(path), MAX_BYTES)
    except TooLarge:
        raise _fail(name, "E102", f"file is larger than {MAX_BYTES} bytes, the limit for experiment files",
                    "is this the right file?") from None
    except NotRegularFile as exc:
        raise _fail(name, "E101", f"cannot read file: {exc.strerror}", "pass the experiment YAML file") from None
    except OSError as exc:
        raise _fail(name, "E101", f"cannot read file: {exc.strerror}") from None
    return decode(raw, name)


def decode(raw: bytes, name: str) -> str:
    if b"\x00" in raw:
        offset = raw.index(b"\x00")
        line = raw.count(b"\n", 0, offset) + 1
        raise _fail(name, "E103", "binary file (contains NUL bytes), not YAML", "pass the experiment YAML file",
                    Span(line, offset - (raw.rfind(b"\n", 0, offset) + 1) + 1))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise _fail(name, "E103", f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
                    "save the file as UTF-8", Span(line, col)) from None
    return text.removeprefix("\ufeff")


def load(path: str | Path, name: str | None = None) -> Source:
    path = Path(path)
    name = name if name is not None else str(path)
    return load_text(read_text(path, name), name)


def load_text(text: str, name: str, fast: bool = True) -> Source:
    """Load YAML text; `fast` tries libyaml first and falls back to the pure-Python loader on any doubt."""
    if not text.strip() or all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()):
        raise _fail(name, "E104", "empty file", "an experiment needs at least experiment_name, trial_name, "
                                                "compute and roles")
    if fast and CLoader is not None and text.endswith("\n") and not PYTHON_ONLY.search(text):
        try:
            source = _load(text, name, CLoader)
            if not source.problems:
                return source
        except (SourceError, yaml.YAMLError):
            pass  # the pure-Python loader says why, with its positions
    return _load(text, name, Loader)


def _load(text: str, name: str, loader_class: type) -> Source:
    _check_depth(text, name, loader_class)
    try:
        loader = loader_class(text)
    except yaml.reader.ReaderError as exc:  # a control character YAML does not allow
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise _fail(name, "E103", f"control character U+{exc.character:04X} is not allowed in YAML",
                    "remove it (is this a binary file?)", Span(line, col), text) from None
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        span = Span(mark.line + 1, mark.column + 1) if mark else None
        problem = exc.problem or "invalid YAML"
        hint = "a file holds one experiment: remove the extra `---` document" if "single document" in str(
            exc.context) else None
        raise _fail(name, "E105", f"YAML syntax error: {problem}", hint, span, text) from None
    except yaml.YAMLError as exc:
        if loader_class is not Loader:
            raise
        raise _fail(name, "E105", f"YAML syntax error: {exc}") from None
    finally:
        loader.dispose()
    if node is None:  # no document at all (e.g. only a second byte-order mark)
        raise _fail(name, "E104", "empty file", "an experiment needs at least experiment_name, trial_name, "
                                                "compute and roles")
    source = Source(name, text, None)
    source.data = _Walker(source, Loader(""), loader_class is not Loader).value(node, (), 0)
    return source


def _check_depth(text: str, name: str, loader_class: type) -> None:
    """Reject absurd nesting from the event stream, before the (recursive) composer sees it."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=loader_class):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    raise _fail(name, "E106", f"nesting deeper than {MAX_DEPTH} levels",
                                "an experiment is a few levels deep; is this the right file?",
                                Span(mark.line + 1, mark.column + 1), text)
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError:
        if loader_class is not Loader:
            raise
        return  # the loader reports syntax errors with their position


class _Walker:
    """Turns composed YAML nodes into plain data, recording spans, refusing duplicates and alias bombs."""

    def __init__(self, source: Source, constructor: yaml.SafeLoader, fast: bool):
        self.source = source
        self.constructor = constructor
        self.fast = fast  # nodes from libyaml, whose marks differ from PyYAML's for empty values
        self.count = 0

    def span(self, node: yaml.Node) -> Span:
        start, end = node.start_mark, node.end_mark
        length = end.column - start.column if end.line == start.line else 1
        return Span(start.line + 1, start.column + 1, max(1, length))

    def error(self, code: str, message: str, node: yaml.Node, hint: str | None = None) -> SourceError:
        return _fail(self.source.name, code, message, hint, self.span(node), self.source.text)

    def value(self, node: yaml.Node, path: Path_, depth: int):
        self.count += 1
        if depth > MAX_DEPTH:  # nesting built from aliases, which the text-level check cannot see
            raise self.error("E106", f"nesting deeper than {MAX_DEPTH} levels (through aliases)", node,
                             "an experiment is a few levels deep; remove the nested anchors and aliases")
        if self.count > MAX_NODES:
            raise self.error("E106", f"more than {MAX_NODES} values after expanding aliases (an alias bomb?)",
                             node, "remove the nested anchors and aliases")
        if self.fast and isinstance(node, yaml.ScalarNode) and node.value == "" and not node.style:
            raise yaml.YAMLError("libyaml places empty values elsewhere: load with the pure-Python loader")
        self.source.value_spans.setdefault(path, self.span(node))
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.value(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        try:
            value = self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise self.error("E105", f"invalid value: {getattr(exc, 'problem', exc)}", node) from None
        return self.text(value, node) if isinstance(value, str) else value

    def text(self, value: str, node: yaml.Node) -> str:
        """The one rule for every key and string value: only characters a YAML file may hold (so it can be
        printed, encoded and passed in argv or the environment), and not absurdly long. A broken value is
        reported and kept with U+FFFD in place of each bad character, so later checks still run."""
        if len(value) > MAX_TEXT:
            self.source.problems.append(self.error(
                "E109", f"a value of {len(value)} characters; keys and values are limited to {MAX_TEXT}", node,
                "is this the right value? long settings belong in a file the program reads").diagnostic)
        bad = NOT_TEXT.search(value)
        if bad is None:
            return value
        code = ord(bad.group())
        why = ("a lone surrogate cannot be encoded as UTF-8" if 0xD800 <= code <= 0xDFFF else
               "NUL cannot be passed to a program" if code == 0 else "a control character cannot be printed")
        diagnostic = self.error("E109", f"character U+{code:04X} is not allowed in a value: {why}", node,
                                "remove the escape; values hold printable characters, tabs and line breaks").diagnostic
        self.source.problems.append(Diagnostic(diagnostic.code, diagnostic.message, diagnostic.file,
                                               self.escape_span(node) or diagnostic.span, diagnostic.hint,
                                               source_line=diagnostic.source_line))
        return NOT_TEXT.sub("\ufffd", value)

    def escape_span(self, node: yaml.Node) -> Span | None:
        """Where, inside a double-quoted scalar on one line, the escape that produced a bad character is."""
        start, end = node.start_mark, node.end_mark
        if getattr(node, "style", None) != '"' or start.line != end.line:
            return None
        for match in ESCAPE.finditer(self.source.text, start.index, end.index):
            if NOT_TEXT.match(_unescape(match.group(1))):
                return Span(start.line + 1, start.column + 1 + match.start() - start.index, len(match.group()))
        return None

    def mapping(self, node: yaml.MappingNode, path: Path_, depth: int) -> dict:
        out: dict = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.error("E107", "mapping keys must be plain names", key_node)
            key = self.text(key_node.value, key_node)  # as written: `on:` stays "on", never becomes True
            if key == "<<" and key_node.tag == "tag:yaml.org,2002:merge":
                raise self.error("E107", "YAML merge keys (`<<`) are not supported", key_node,
                                 "write the keys out, or alias a whole value with `*name`")
            if key in out:
                first = self.source.key_spans[path + (key,)]
                self.source.problems.append(self.error(
                    "E108", f"duplicate key `{key}` (first defined on line {first.line})", key_node,
                    "YAML would silently keep only the last one; remove one of them").diagnostic)
                continue
            self.source.key_spans[path + (key,)] = self.span(key_node)
            out[key] = self.value(value_node, path + (key,), depth + 1)
        return out


def _unescape(escape: str) -> str:
    """The character a double-quoted YAML escape (without its backslash) stands for."""
    if escape[0] in "xuU" and len(escape) > 1:
        return chr(int(escape[1:], 16))
    return {"0": "\0", "a": "\a", "b": "\b", "e": "\x1b", "v": "\v", "f": "\f"}.get(escape, " ")
