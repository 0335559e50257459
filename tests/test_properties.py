"""No input crashes the compiler: random and mutated YAML gives exit 0 or 1, and every error is located."""
from __future__ import annotations

import copy

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import EXAMPLES, ROOT, areal
from areal_compiler.pipeline import compile_file
from areal_compiler.targets import names as target_names

TARGETS = target_names()

DOCS = [yaml.safe_load(p.read_text(encoding="utf-8")) for p in EXAMPLES]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 70000), st.floats(width=32),
                    st.text(max_size=12), st.sampled_from(["sglang:d4", "fsdp:d8", "GPU_8xH100", "colocation",
                                                           "actor", "rollout", "$(touch /tmp/x)", "a:b"]))


def paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from paths(v, prefix + (i,))


def at(doc, path):
    for part in path:
        doc = doc[part]
    return doc


@st.composite
def mutated(draw):
    doc = copy.deepcopy(draw(st.sampled_from(DOCS)))
    for _ in range(draw(st.integers(1, 4))):
        candidates = [p for p in paths(doc) if p]
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent, key = at(doc, path[:-1]), path[-1]
        action = draw(st.sampled_from(["delete", "rename", "retype", "duplicate"]))
        if action == "delete":
            del parent[key]
        elif action == "retype":
            parent[key] = draw(st.one_of(SCALARS, st.just([1, 2]), st.just({"x": 1})))
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10)) + str(key)] = parent.pop(key)
        elif action == "duplicate" and isinstance(parent, dict):
            text = yaml.safe_dump(doc, sort_keys=False)
            return text + f"{key}: 1\n" if len(path) == 1 else text
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def assert_well_behaved(path):
    result = compile_file(str(path), TARGETS)  # raises on any bug: the property is "never raises"
    if not result.ok:
        errors = [d for d in result.diagnostics if d.is_error]
        assert errors
        for d in errors:
            assert d.code and d.message and d.file == str(path)
            assert d.span is not None or d.code in ("E101", "E102", "E104"), d.render()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=mutated())
def test_mutated_examples_never_crash(tmp_path, text):
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    assert_well_behaved(path)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400))
def test_random_bytes_never_crash(tmp_path, data):
    path = tmp_path / "r.yaml"
    path.write_bytes(data)
    assert_well_behaved(path)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.sampled_from(list("ab:{}[]-,&*!|>'\"#\n\t %@`?")), max_size=120))
def test_yaml_punctuation_soup_never_crashes(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    assert_well_behaved(path)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=mutated())
def test_cli_exit_codes_on_mutations(tmp_path, text):
    """The same property through the real CLI process: exit 0 or 1, never a traceback."""
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    result = areal("validate", str(path), cwd=ROOT)
    assert result.returncode in (0, 1), result.stderr.decode()
    assert b"Traceback" not in result.stderr


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=mutated(), target=st.sampled_from(["all", "local", "slurm", "kubernetes", "ray", "slurm,ray"]))
def test_validate_succeeds_exactly_when_compile_does(tmp_path, text, target):
    """`areal validate` and `areal compile` agree on generated experiments, target by target (placement and every
    target's own checks included), with the same diagnostics."""
    from click.testing import CliRunner

    from areal_compiler.cli import main

    path = tmp_path / "v.yaml"
    path.write_text(text, encoding="utf-8")
    runner = CliRunner()
    validated = runner.invoke(main, ["validate", str(path), "--target", target, "-o", "json"])
    compiled = runner.invoke(main, ["compile", str(path), "--target", target, "--out", str(tmp_path / "o"),
                                    "-o", "json"])
    assert validated.exit_code in (0, 1) and compiled.exit_code in (0, 1), (validated.output, compiled.output)
    assert validated.exit_code == compiled.exit_code, (validated.output, compiled.output)
    if validated.exit_code:
        import json

        assert json.loads(validated.stdout)["data"]["files"] == json.loads(compiled.stdout)["data"]["files"]
