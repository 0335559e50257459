"""Loading: every way a file can be unreadable gives one located diagnostic, never a traceback."""
from __future__ import annotations

import time

import pytest

from helpers import BASE, located, write


def codes(path):
    return [c for c, _, _ in located(path)]


def test_missing_file(tmp_path):
    assert located(tmp_path / "nope.yaml") == [("E101", 0, 0)]


def test_directory(tmp_path):
    assert codes(tmp_path) == ["E101"]


def test_empty_and_comment_only(tmp_path):
    assert codes(write(tmp_path, "")) == ["E104"]
    assert codes(write(tmp_path, "# only a comment\n\n")) == ["E104"]


def test_binary(tmp_path):
    path = tmp_path / "b.yaml"
    path.write_bytes(b"experiment_name: x\n\x00\x01\x02")
    assert located(path) == [("E103", 2, 1)]


def test_not_utf8_points_at_byte(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"experiment_name: caf\xe9\n")
    assert located(path) == [("E103", 1, 21)]


def test_syntax_error_located(tmp_path):
    assert located(write(tmp_path, "experiment_name: x\nroles: [a, b\ntrial_name: y\n")) == [("E105", 3, 11)]


def test_tab_indentation_is_a_syntax_error(tmp_path):
    assert codes(write(tmp_path, "compute:\n\taccelerator: GPU_8xH100\n")) == ["E105"]


def test_two_documents(tmp_path):
    assert codes(write(tmp_path, BASE + "---\n" + BASE)) == ["E105"]


def test_duplicate_key_reported_with_the_rest(tmp_path):
    text = BASE.replace("trial_name: t0\n", "trial_name: t0\ntrial_name: t1\n")
    assert ("E108", 3, 1) in located(write(tmp_path, text))


def test_duplicate_nested_key(tmp_path):
    text = BASE.replace('    cmd: python3 -m train\n', '    cmd: python3 -m train\n    cmd: other\n')
    assert located(write(tmp_path, text)) == [("E108", 13, 5)]


def test_merge_key_rejected(tmp_path):
    text = BASE + "x: &a {cpu: 1}\ny:\n  <<: *a\n"
    assert codes(write(tmp_path, text)) == ["E107"]


def test_alias_bomb_is_fast_and_bounded(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    start = time.perf_counter()
    result = codes(write(tmp_path, "\n".join(lines) + "\n"))
    assert result == ["E106"]
    assert time.perf_counter() - start < 30  # sanity bound only: a real bomb would take forever


def test_absurd_nesting(tmp_path):
    assert codes(write(tmp_path, "x: " + "[" * 5000 + "]" * 5000 + "\n")) == ["E106"]


def test_top_level_must_be_mapping(tmp_path):
    assert codes(write(tmp_path, "- a\n- b\n")) == ["E203"]


@pytest.mark.parametrize("key", ["on", "yes", "no", "null", "1"])
def test_keys_stay_text(tmp_path, key):
    """YAML 1.1 reads `on:` as true; keys are names here, so an env var named ON stays "on"."""
    text = BASE.replace("    cmd: python3 -m train\n",
                        f"    cmd: python3 -m train\n    scheduling_spec: {{env_vars: {{{key}: v}}}}\n")
    diags = located(write(tmp_path, text))
    assert all(code != "E203" for code, _, _ in diags)


def test_nesting_through_aliases_is_bounded(tmp_path):
    """Each anchor nests the previous one 10 levels deeper: shallow as text, 300 levels once aliases expand."""
    lines = ["a0: &a0 x"]
    for i in range(1, 31):
        lines.append(f"a{i}: &a{i} " + "[" * 10 + f"*a{i - 1}" + "]" * 10)
    assert codes(write(tmp_path, "\n".join(lines) + "\n")) == ["E106"]
