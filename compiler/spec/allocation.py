"""Parser for AReaL allocation strings (e.g. ``sglang[rollout]:d2+fsdp[actor]:d4``).

Called by the spec loader and the compiler's cross-field checks; offsets point into the original string."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

INFERENCE_BACKENDS = ("sglang", "vllm")
TRAINING_BACKENDS = ("fsdp", "megatron", "archon")
BACKENDS = INFERENCE_BACKENDS + TRAINING_BACKENDS

# Error codes: stable strings callers and tests can match on.
CODES = {
    "A001": "allocation string is empty",
    "A002": "backend prefix missing (component starts with dims or a name)",
    "A003": "unknown backend",
    "A004": "syntax error: unexpected character or missing ':', ']', ')', '|'",
    "A005": "backend has no parallelism dims",
    "A006": "parallelism letter not supported by this backend / hybrid section",
    "A007": "parallelism size missing, zero or absurdly large",
    "A008": "parallelism letter repeated",
    "A009": "invalid component name",
    "A010": "three or more components, one unnamed",
    "A011": "member of a '|' colocation group unnamed",
    "A012": "duplicate component name",
    "A013": "colocated members with different world sizes",
    "A014": "expert parallelism does not divide the world size",
    "A015": "hybrid (attn|ffn) syntax on a backend other than megatron",
    "A016": "hybrid attn and ffn pipeline parallelism differ",
    "A017": "hybrid ffn world size differs from attn world size",
    "A018": "hybrid (attn|ffn) dims without their parentheses",
}

_LETTERS = {
    "sglang": "dtp", "vllm": "dtp",
    "fsdp": "dptce", "megatron": "dptce", "archon": "dptce",  # fsdp: p and e only as 1 (upstream's rule)
}
_LETTER_NAMES = {"d": "data", "t": "tensor", "p": "pipeline", "c": "context", "e": "expert"}
_HYBRID_ATTN, _HYBRID_FFN = "cdtp", "detp"
_TERMINATORS = "+|)"
_SPACE = " \t\n\r\f"  # upstream's grammar ignores exactly these (Lark's WS)
_NAME_START = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
_NAME_CHARS = _NAME_START + "0123456789"
_MAX_SIZE_DIGITS = 6  # sizes above 999999 are certainly typos (and keep int() cheap)


@dataclass(frozen=True)
class Dims:
    d: int = 1
    t: int = 1
    p: int = 1
    c: int = 1
    e: int = 1

    @property
    def world(self) -> int:
        """GPUs used: d*c*t*p (expert parallelism reuses the same GPUs)."""
        return self.d * self.c * self.t * self.p


@dataclass(frozen=True)
class Single:
    backend: str
    name: str | None
    dims: Dims
    ffn: Dims | None = None  # hybrid MoE only: dims holds attn, ffn holds ffn

    @property
    def kind(self) -> str:
        return "inference" if self.backend in INFERENCE_BACKENDS else "training"

    @property
    def world(self) -> int:
        return self.dims.world


@dataclass(frozen=True)
class Group:
    members: tuple[Single, ...]

    @property
    def world(self) -> int:
        return self.members[0].world


@dataclass(frozen=True)
class Allocation:
    groups: tuple[Group, ...]

    @property
    def total_devices(self) -> int:
        return sum(g.world for g in self.groups)

    def singles(self) -> tuple[Single, ...]:
        return tuple(m for g in self.groups for m in g.members)


class AllocationError(Exception):
    def __init__(self, code: str, message: str, offset: int, hint: str | None = None):
        super().__init__(f"{code} at offset {offset}: {message}" + (f" ({hint})" if hint else ""))
        self.code, self.message, self.offset, self.hint = code, message, offset, hint


@dataclass
class _Parsed:
    """A Single plus the offsets needed for structural error messages."""
    single: Single
    start: int          # offset of the backend token
    name_at: int        # offset of the name (or of the backend when unnamed)


def _looks_like_dims(word: str) -> bool:
    """True for words like 'd2p2t1': one or more <letter><digits>."""
    i, n = 0, len(word)
    if n == 0:
        return False
    while i < n:
        if not word[i].isalpha():
            return False
        j = i + 1
        while j < n and word[j].isdigit():
            j += 1
        if j == i + 1:
            return False
        i = j
    return True


class _Parser:
    def __init__(self, text: str):
        self.text, self.pos = text, 0

    # -- low-level helpers -------------------------------------------------
    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _SPACE:
            self.pos += 1

    def peek(self) -> str:
        """Next non-whitespace character ('' at end); leaves pos on it."""
        self.skip_ws()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def fail(self, code: str, message: str, offset: int | None = None, hint: str | None = None) -> NoReturn:
        raise AllocationError(code, message, self.pos if offset is None else offset, hint)

    def word(self) -> tuple[str, int]:
        """Read an identifier-like run [A-Za-z0-9_-]; returns (word, start offset)."""
        self.skip_ws()
        start = self.pos
        while self.pos < len(self.text) and (self.text[self.pos].isalnum() or self.text[self.pos] in "_-"):
            self.pos += 1
        return self.text[start:self.pos], start

    def found(self) -> str:
        ch = self.peek()
        return f"'{ch}'" if ch else "end of string"

    def expect(self, ch: str, hint: str | None = None) -> int:
        if self.peek() != ch:
            self.fail("A004", f"Expected '{ch}' but found {self.found()}", hint=hint)
        self.pos += 1
        return self.pos - 1

    # -- grammar -------------------------------------------------------------
    def parse(self) -> list[list[_Parsed]]:
        if not self.text.strip():
            self.fail("A001", "Allocation string is empty", 0,
                      "Write e.g. 'sglang:d2+fsdp:d4' (backend:dims, '+' between separate GPU sets)")
        groups = [self.component()]
        while self.peek() == "+":
            self.pos += 1
            groups.append(self.component())
        if self.peek():
            self.fail("A004", f"Unexpected {self.found()}",
                      hint="Components are joined with '+' (separate GPUs) or '|' (colocated)")
        return groups

    def component(self) -> list[_Parsed]:
        members = [self.single()]
        while self.peek() == "|":
            self.pos += 1
            members.append(self.single())
        return members

    def single(self) -> _Parsed:
        backend, start = self.backend()
        name, name_at = self.name(backend, start)
        ch = self.peek()
        if ch == "":
            self.fail("A005", f"Backend '{backend}' has no parallelism dims",
                      hint=f"Add dims after a colon, e.g. '{backend}:d2'")
        if ch != ":":
            hint = f"Use ':' instead of '.', e.g. '{backend}:d4'" if ch == "." else None
            self.fail("A004", f"Expected ':' after backend '{backend}' but found {self.found()}",
                      hint=hint or f"Write e.g. '{backend}:d2'")
        self.pos += 1
        if self.peek() == "(" or self.text.startswith("attn", self.pos):
            dims, ffn = self.hybrid(backend)  # named or not (AReaL 2.0 names it: megatron[actor]:(attn:..|ffn:..))
        else:
            vals = self.dims(backend, _LETTERS[backend], f"The {backend} backend")
            if backend == "fsdp":
                _check_fsdp(vals)
            dims, ffn = _check_expert(vals, None), None
        return _Parsed(Single(backend, name, dims, ffn), start, name_at)

    def backend(self) -> tuple[str, int]:
        ch = self.peek()
        start = self.pos
        if ch in ("", "+", "|"):
            self.fail("A004", f"Expected a component (backend:dims) but found {self.found()}",
                      hint="Remove the stray separator or add a component such as 'fsdp:d4'")
        if ch == "[":
            self.fail("A002", "Backend must be explicitly specified", start,
                      f"Put a backend before the name, one of {', '.join(BACKENDS)}")
        word, start = self.word()
        if word in BACKENDS:
            return word, start
        if _looks_like_dims(word):
            self.fail("A002", "Backend must be explicitly specified", start,
                      f"Prefix the dims with a backend, e.g. 'fsdp:{word}'")
        if not word:
            self.fail("A004", f"Expected a backend name but found {self.found()}", start,
                      f"Backends: {', '.join(BACKENDS)}")
        import difflib  # only for a misspelled backend

        close = difflib.get_close_matches(word.lower(), BACKENDS, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]}?" if close else f"Backends: {', '.join(BACKENDS)}"
        self.fail("A003", f"Unknown backend '{word}'", start, hint)

    def name(self, backend: str, start: int) -> tuple[str | None, int]:
        if self.peek() != "[":
            return None, start
        self.pos += 1
        word, at = self.word()
        if not word or word[0] not in _NAME_START or any(ch not in _NAME_CHARS for ch in word):
            self.fail("A009", f"Invalid component name: found {repr(word) if word else self.found()}", at,
                      "Names are ASCII letters, digits and '_', not starting with a digit, e.g. fsdp[actor]:d4")
        self.expect("]", hint=f"Close the name: '{backend}[{word}]'")
        return word, at

    def dims(self, backend: str, allowed: str, who: str) -> dict[str, tuple[int, int]]:
        """Parse <letter><int>... until a terminator; returns {letter: (value, letter offset)}."""
        vals: dict[str, tuple[int, int]] = {}
        while True:
            ch = self.peek()
            if ch == "" or ch in _TERMINATORS:
                break
            at = self.pos
            if not ch.isalpha():
                self.fail("A004", f"Expected a parallelism letter ({', '.join(allowed)}) but found '{ch}'",
                          hint="Dims are letter+size pairs, e.g. 'd2t4'")
            if ch not in allowed:
                self.fail("A006", _unsupported_message(backend, ch, who), at,
                          f"Allowed letters here: {', '.join(allowed)}")
            if ch in vals:
                self.fail("A008", f"Parallelism letter '{ch}' is given twice", at,
                          f"Keep a single '{ch}<n>'")
            self.pos += 1
            vals[ch] = (self.number(ch), at)
        if not vals:
            self.fail("A005", f"{who} has no parallelism dims",
                      hint=f"Give at least one size, e.g. '{allowed[0]}2'")
        return vals

    def number(self, letter: str) -> int:
        self.skip_ws()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in "0123456789":
            self.pos += 1
        digits = self.text[start:self.pos]
        if not digits or digits[0] == "0" or len(digits) > _MAX_SIZE_DIGITS:
            self.fail("A007", f"Parallelism letter '{letter}' needs a positive integer size without leading "
                      f"zeros (1 to {10 ** _MAX_SIZE_DIGITS - 1})", start,
                      f"Write e.g. '{letter}2' (missing letters default to 1)")
        return int(digits)

    def keyword(self, kw: str) -> int:
        word, at = self.word()
        if word != kw:
            self.fail("A004", f"Expected '{kw}' in hybrid MoE dims but found "
                      f"{repr(word) if word else self.found()}", at,
                      "Hybrid syntax: megatron:(attn:<dims>|ffn:<dims>)")
        self.expect(":", hint="Hybrid syntax: megatron:(attn:<dims>|ffn:<dims>)")
        return at

    def hybrid(self, backend: str) -> tuple[Dims, Dims]:
        if backend not in ("megatron", "archon"):
            self.fail("A015", f"Hybrid (attn|ffn) dims are only supported by megatron and archon, not {backend}",
                      hint="Use megatron:(attn:<dims>|ffn:<dims>) or plain dims")
        if self.peek() != "(":
            self.fail("A018", "Hybrid (attn|ffn) dims need parentheses",
                      hint=f"Write {backend}:(attn:<dims>|ffn:<dims>)")
        self.pos += 1
        self.keyword("attn")
        attn = self.dims(backend, _HYBRID_ATTN, "The hybrid attn section")
        self.expect("|", hint=f"Hybrid syntax: {backend}:(attn:<dims>|ffn:<dims>)")
        ffn_at = self.keyword("ffn")
        ffn = self.dims(backend, _HYBRID_FFN, "The hybrid ffn section")
        if self.peek() != ")":
            self.fail("A018", f"Expected ')' closing the hybrid dims but found {self.found()}",
                      hint="Close the hybrid dims with ')'")
        self.pos += 1
        return _check_hybrid(attn, ffn, ffn_at)


def _unsupported_message(backend: str, letter: str, who: str) -> str:
    if letter not in _LETTER_NAMES:
        return f"Unknown parallelism letter '{letter}'"
    if who.startswith("The hybrid"):
        return f"{who} does not support {_LETTER_NAMES[letter]} parallelism ('{letter}')"
    if backend == "fsdp":
        return "FSDP backend only supports data/tensor/context parallelism"
    if backend in INFERENCE_BACKENDS:
        return f"Inference backend {backend} only supports data/tensor/pipeline parallelism"
    return f"{who} does not support {_LETTER_NAMES[letter]} parallelism ('{letter}')"


def _value(vals: dict[str, tuple[int, int]], letter: str) -> int:
    return vals[letter][0] if letter in vals else 1


def _check_fsdp(vals: dict[str, tuple[int, int]]) -> None:
    """FSDP takes p and e only as 1 (upstream accepts `fsdp:d4p1t1`, common in its example configs)."""
    for letter in "pe":
        if _value(vals, letter) > 1:
            raise AllocationError("A006", "FSDP backend only supports data/tensor/context parallelism",
                                  vals[letter][1], f"Use d, t and c with fsdp ('{letter}' may only be 1), "
                                  "or megatron/archon for pipeline or expert parallelism")


def _check_expert(vals: dict[str, tuple[int, int]], ffn: dict | None, world: int | None = None) -> Dims:
    """Build Dims for `vals`; any e>1 needs world % (p*etp*e) == 0 (etp = ffn t, else 1)."""
    src = ffn if ffn is not None else vals
    dims = Dims(**{k: v for k, (v, _) in vals.items()})
    world = dims.world if world is None else world
    e, p = _value(src, "e"), _value(src, "p")
    etp = _value(ffn, "t") if ffn is not None else 1
    if e > 1 and world % (p * etp * e):
        raise AllocationError(
            "A014", f"Expert parallelism e{e} does not fit the world size {world}: it must be a "
            f"multiple of pp*etp*e = {p * etp * e}", src["e"][1],
            "Pick e so that pp*etp*e divides the world size, e.g. raise d")
    return dims


def _check_hybrid(attn: dict, ffn: dict, ffn_at: int) -> tuple[Dims, Dims]:
    attn_dims = _check_expert(attn, None)
    world = attn_dims.world
    if "p" not in ffn and "p" in attn:  # ffn pipeline parallelism defaults to attn's (upstream's rule)
        ffn = {**ffn, "p": (attn["p"][0], ffn_at)}
    if _value(attn, "p") != _value(ffn, "p"):
        at = ffn["p"][1] if "p" in ffn else ffn_at
        raise AllocationError("A016", f"Hybrid attn pipeline parallelism p{_value(attn, 'p')} differs "
                              f"from ffn p{_value(ffn, 'p')}", at, "Use the same p in attn and ffn")
    per_dp = _value(ffn, "t") * _value(ffn, "p") * _value(ffn, "e")
    if "d" not in ffn:
        if world % per_dp:
            raise AllocationError("A017", f"Cannot derive ffn data parallelism: attn world {world} is "
                                  f"not a multiple of ffn t*p*e = {per_dp}", ffn_at,
                                  "Adjust ffn t/p/e or give ffn d explicitly")
        ffn = {**ffn, "d": (world // per_dp, ffn_at)}
    elif ffn["d"][0] * per_dp != world:
        raise AllocationError("A017", f"Hybrid ffn world d*t*p*e = {ffn['d'][0] * per_dp} differs from "
                              f"attn world {world}", ffn_at,
                              "attn d*c*t*p must equal ffn d*t*p*e (or omit ffn d to derive it)")
    return attn_dims, _check_expert(ffn, ffn, world)


def _check_structure(groups: list[list[_Parsed]]) -> None:
    """Naming and colocation rules, checked left to right."""
    seen: set[str] = set()
    components = sum(len(members) for members in groups)
    for members in groups:
        first = members[0]
        for idx, item in enumerate(members):
            s = item.single
            if s.name is None and len(members) > 1:
                hint = (f"Name the colocation target, e.g. '{s.backend}[actor]:...|...'" if idx == 0
                        else f"Name the colocated member, e.g. '{s.backend}[critic]:...'")
                raise AllocationError("A011", "Every member of a '|' colocation group must be named",
                                      item.start, hint)
            if s.name is None and components >= 3:
                raise AllocationError("A010", "With three or more components, every component "
                                      "must be named", item.start,
                                      f"Name it, e.g. '{s.backend}[ref]:...'")
            if s.name is not None:
                if s.name in seen:
                    raise AllocationError("A012", f"Duplicate component name '{s.name}'",
                                          item.name_at, "Give each component a unique name")
                seen.add(s.name)
            if idx > 0 and s.world != first.single.world:
                raise AllocationError("A013", f"Colocated member '{s.name}' has world size {s.world} "
                                      f"but '{first.single.name}' has {first.single.world}",
                                      item.start, "Colocated members share GPUs: make their world sizes equal")


def parse_allocation(text: str) -> Allocation:
    """Parse an allocation string; raises AllocationError for the first problem found."""
    if not isinstance(text, str):
        raise AllocationError("A001", "Allocation must be a string", 0,
                              "Write e.g. 'sglang:d2+fsdp:d4'")
    groups = _Parser(text).parse()
    _check_structure(groups)
    return Allocation(tuple(Group(tuple(p.single for p in members)) for members in groups))
