"""Property: no generated hostile file makes `validate`, `compile --target all` or `-o json` crash.

Random bytes, escapes no file may hold (surrogates, NUL, controls), huge numbers, deep nesting, long values and
mutated examples go through the real click commands in-process; only exit 0/1 is allowed, `-o json` prints
exactly one envelope, nothing prints a traceback, and text and JSON validation agree."""
from __future__ import annotations

import json
import re

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import EXAMPLES
from areal_compiler.cli import main

TEXTS = [p.read_text(encoding="utf-8") for p in EXAMPLES]
VALUE_LINE = re.compile(r"^(\s*[-\w]+:\s+)(\S.*)$")
HOSTILE = ['"\\ud800"', '"x\\udfffy"', '"\\0"', '"a\\x00b"', '"a\\nb"', '"\\e[31m"', '"\\x7f"', '"\\uFFFE"',
           "1e300", "-1e400", ".nan", ".inf", "99999999999999999999999", "-1", "0", "1.5", "true", "~", "{}", "[]",
           "[" * 80 + "]" * 80, "&a [*a, *a]", "!!binary AAAA", "!!python/object:os.system x", '"%s%n{port7}"',
           '"$(touch /tmp/pwned)"', "/", '"/a\\nb"', "x" * 20000, '"' + "y " * 9000 + '"', "'it''s'", "|\n  block"]
FLAGS = st.sampled_from([[], ["--target", "all"]])


@st.composite
def mutated_text(draw) -> str:
    """An example with a few values replaced by hostile ones (and maybe a hostile key or comment)."""
    lines = draw(st.sampled_from(TEXTS)).splitlines()
    for _ in range(draw(st.integers(1, 3))):
        candidates = [i for i, line in enumerate(lines) if VALUE_LINE.match(line)]
        i = draw(st.sampled_from(candidates))
        head = VALUE_LINE.match(lines[i]).group(1)
        lines[i] = head + draw(st.sampled_from(HOSTILE))
    extra = draw(st.sampled_from(["", '"\\ud800": 1', "# \\ud800 \\0 in a comment", 'x\\ud800: 1', "---", "<<: *a"]))
    return "\n".join(lines + [extra]) + "\n"


@st.composite
def flipped_bytes(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(TEXTS)).encode("utf-8"))
    for _ in range(draw(st.integers(1, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


HOSTILE_FILES = st.one_of(
    mutated_text().map(lambda t: t.encode("utf-8")),
    flipped_bytes(),
    st.binary(max_size=300),
    st.lists(st.sampled_from([b"\xef\xbb\xbf", b"---\n", b"...\n", b"%YAML 1.1\n", b"a: 1\n", b"\r\n", b"# c\n"]),
             max_size=6).map(b"".join),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=200).map(lambda t: t.encode("utf-8")),
    st.integers(60, 200).map(lambda n: (("a:\n" + "  " * 0) + "".join("  " * i + "b:\n" for i in range(1, n))).encode()),
)


def run(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 1), (args, result.exit_code, result.stderr)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    return result.exit_code, result.stdout, result.stderr


def one_envelope(stdout: str) -> dict:
    envelope = json.loads(stdout)  # the whole of stdout is one JSON document
    assert envelope["v"] == 1 and ("data" in envelope) != ("error" in envelope), envelope
    return envelope


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(data=HOSTILE_FILES, flags=FLAGS)
def test_hostile_files_never_crash_any_command(tmp_path, data, flags):
    path = tmp_path / "hostile.yaml"
    path.write_bytes(data)
    text_code, _, _ = run(["validate", str(path)])
    json_code, stdout, _ = run(["validate", "-o", "json", str(path)])
    assert text_code == json_code and one_envelope(stdout)["data"]["valid"] is (json_code == 0)
    code, stdout, _ = run(["compile", *flags, "--out", str(tmp_path / "out"), "-o", "json", str(path)])
    one_envelope(stdout)
    assert code == json_code or (code == 1 and "E490" in stdout)  # a target may refuse a valid experiment
    run(["compile", *flags, "--out", str(tmp_path / "out"), str(path)])


def _outcome(text: str, fast: bool):
    from areal_compiler.source import SourceError, load_text

    try:
        source = load_text(text, "f.yaml", fast=fast)
    except SourceError as exc:
        return "error", exc.diagnostic.render()
    return (repr(source.data), sorted(source.value_spans.items()), sorted(source.key_spans.items()),
            [d.render() for d in source.problems])


YAMLISH = st.one_of(mutated_text(), flipped_bytes().map(lambda b: b.decode("utf-8", "replace")),
                    st.text(alphabet=st.sampled_from(list("ab:{}[]-,&*!|>'\"#\n\r %@`?\\\x85\u2028\ufeffé0.e+~\t")),
                            max_size=120))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=YAMLISH)
def test_libyaml_and_pure_python_loaders_agree(text):
    """The libyaml path gives exactly the data, positions and diagnostics of the pure-Python path."""
    assert _outcome(text, fast=True) == _outcome(text, fast=False)


def test_the_examples_take_the_libyaml_path(monkeypatch):
    from areal_compiler import source

    if source.CLoader is None:
        import pytest

        pytest.skip("PyYAML without libyaml")
    used = []
    real = source._load
    monkeypatch.setattr(source, "_load", lambda text, name, cls: used.append(cls) or real(text, name, cls))
    for text in TEXTS:
        source.load_text(text, "x.yaml")
    assert used == [source.CLoader] * len(TEXTS)
