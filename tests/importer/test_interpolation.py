"""`${...}` in upstream configs: whole mappings and lists; located errors for missing targets, cycles, resolvers."""
from __future__ import annotations

from imp_helpers import GSM8K, codes, imported, only


def test_whole_list_reference_copies_values_and_points_at_the_written_value(tmp_path):
    text = GSM8K.replace("kl_ctl: 0.0", "kl_ctl: 0.1").replace("      mem: 32\n", "      mem: 32\n      cpu: 3\n")
    source, checked = imported(tmp_path, text)
    assert checked.ok, [d.render() for d in checked.diagnostics]
    ref = source.data["roles"]["ref"]
    assert ref["scheduling_spec"]["cpu"] == 3 and ref["cmd"] == "python3 -m areal.infra.rpc.rpc_server"
    actor_cpu = source.span_of(("roles", "actor", "scheduling_spec", "cpu"))
    assert source.span_of(("roles", "ref", "scheduling_spec", "cpu")) == actor_cpu
    assert actor_cpu.line == text.splitlines().index("      cpu: 3") + 1


def test_error_inside_an_interpolated_value_says_which_reference_brought_it(tmp_path):
    text = GSM8K.replace("kl_ctl: 0.0", "kl_ctl: 0.1").replace("port_count: 2", "port_count: 1")
    _, checked = imported(tmp_path, text)
    lines = text.splitlines()
    port_line = next(i for i, ln in enumerate(lines, 1) if "port_count: 1" in ln)
    ref = next(i for i, ln in enumerate(lines, 1) if ln.startswith("ref:"))
    ref_line = next(i for i, ln in enumerate(lines, 1) if i > ref and "scheduling_spec:" in ln)
    found = [d for d in checked.diagnostics if d.code == "E450"]
    assert {(d.span.line, d.span.col) for d in found} == {(port_line, 19)}
    via = [d for d in found if "`ref`" in d.message]
    assert len(via) == 1 and f"through `${{actor.scheduling_spec}}` at line {ref_line}:20" in via[0].hint
    assert via[0].file.endswith("upstream.yaml") and via[0].source_line.strip() == "port_count: 1"


def test_missing_target_is_located_at_the_reference_with_a_suggestion(tmp_path):
    _, checked = imported(tmp_path, GSM8K.replace("${train_dataset.batch_size}", "${train_dataset.batch_siz}"))
    error = only(checked, "E501")
    assert (error.span.line, error.span.col) == (14, 24) and "batch_size" in error.hint
    assert not checked.ok


def test_cycle_is_one_located_error(tmp_path):
    _, checked = imported(tmp_path, GSM8K + "a: ${b.c}\nb:\n  c: ${a}\n")
    error = only(checked, "E502")
    assert "a -> b.c -> a" in error.message and error.span.line == GSM8K.count("\n") + 1


def test_reference_into_a_referenced_list_and_relative_reference(tmp_path):
    text = GSM8K.replace("max_head_offpolicyness: 2", "max_head_offpolicyness: ${rollout.scheduling_spec.0.port_count}")
    text = text.replace("max_concurrent_rollouts: 256", "max_concurrent_rollouts: ${.consumer_batch_size}")
    source, checked = imported(tmp_path, text)
    assert checked.ok, [d.render() for d in checked.diagnostics]
    assert source.data["staleness"]["max_head_offpolicyness"] == 2
    assert source.data["staleness"]["max_concurrent_rollouts"] == 256


def test_environment_resolver_is_fine_where_the_compiler_does_not_look(tmp_path):
    _, checked = imported(tmp_path, GSM8K.replace("path: openai/gsm8k", "path: ${oc.env:DATA_DIR}/gsm8k"))
    assert checked.ok, [d.render() for d in checked.diagnostics]


def test_environment_resolver_in_a_launch_setting_is_a_located_error(tmp_path):
    text = GSM8K.replace("      mem: 32", "      mem: ${oc.env:MEM,32}")
    _, checked = imported(tmp_path, text)
    error = only(checked, "E503")
    assert error.span.line == text.splitlines().index("      mem: ${oc.env:MEM,32}") + 1
    assert "${oc.env:MEM,32}" in error.message


def test_mapping_inside_a_string_is_an_error(tmp_path):
    _, checked = imported(tmp_path, GSM8K.replace("path: openai/gsm8k", "path: x-${actor.scheduling_spec}"))
    assert [c for c, _, _ in codes(checked) if c.startswith("E")] == ["E505"]


def test_escaped_reference_is_literal_text(tmp_path):
    source, checked = imported(tmp_path, GSM8K.replace("cmd: python3 -m areal.infra.rpc.rpc_server",
                                                        "cmd: python3 -m x --tag \\${not.a.ref}"))
    assert checked.ok and source.data["roles"]["actor"]["cmd"] == "python3 -m x --tag ${not.a.ref}"


def test_relative_reference_error_names_what_was_written(tmp_path):
    _, checked = imported(tmp_path, GSM8K.replace("${train_dataset.batch_size}", "${..nope}"))
    assert "`${..nope}` refers to `nope`" in only(checked, "E501").message


def test_a_block_that_is_not_a_mapping_is_located(tmp_path):
    _, checked = imported(tmp_path, GSM8K.replace("scheduler:\n  type: null", "scheduler: 3"))
    assert only(checked, "E511").span.line == 8 and not checked.ok
