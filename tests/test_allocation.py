"""Tests for the allocation-string parser (areal_compiler.spec.allocation)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from areal_compiler.spec.allocation import (
    CODES,
    INFERENCE_BACKENDS,
    TRAINING_BACKENDS,
    Allocation,
    AllocationError,
    Dims,
    Group,
    Single,
    parse_allocation,
)
from areal_compiler.spec.shape import parse_role_backend

# (text, total devices, world of each single in order) -- the valid examples of domain.md section 3.
VALID = [
    ("sglang:d4p2t2", 16, [16]),
    ("sglang:d2+fsdp:d4", 6, [2, 4]),
    ("vllm:d2t4+megatron:d2p2t1", 12, [8, 4]),
    ("sglang[rollout]:d2+fsdp[actor]:d4|fsdp[critic]:d4", 6, [2, 4, 4]),
    ("megatron:(attn:d4p2t2c2|ffn:d2p2t4e2)", 32, [32]),
    ("megatron:(attn:d1p12t4|ffn:d1p12e4)", 48, [48]),
    ("fsdp:d4c2", 8, [8]),
    ("archon:d2", 2, [2]),
    ("megatron:d4e2", 4, [4]),
    # what upstream 1.0.4 accepts too (tests/areal/test_parity.py checks it against upstream itself):
    ("fsdp:d4p1t1", 4, [4]),                            # fsdp with an explicit p1 (19 upstream example configs)
    ("fsdp:d2e1c2", 4, [4]),                            # ... and e1
    ("megatron:(attn:d4p2|ffn:d4)", 8, [8]),            # ffn p defaults to attn's p
    ("archon:(attn:d4|ffn:e2)", 4, [4]),                # hybrid on archon
    ("fsdp [ actor ] : d4", 4, [4]),                    # spaces anywhere between tokens
]

# (text, code, offset) -- the invalid examples of domain.md section 3, plus the extra rules.
INVALID = [
    ("fsdp:d4p2", "A006", 7),                          # 'p' not allowed for fsdp
    ("fsdp:d2e2", "A006", 7),                          # 'e' not allowed for fsdp
    ("sglang:d2+fsdp[actor]:d4+fsdp:d4", "A010", 0),   # 3 components: first unnamed one is sglang
    ("sglang[actor]:d2+fsdp[actor]:d4", "A012", 22),   # second 'actor'
    ("fsdp:d4|fsdp:d4", "A011", 0),                    # colocation target unnamed
    ("d1", "A002", 0),
    ("d2p2t1", "A002", 0),
    ("[actor]:d4", "A002", 0),
    ("sglang:d4+d4", "A002", 10),
    ("vllm:d4+[actor]:d4", "A002", 8),
    ("sglang:d2c2", "A006", 9),                        # 'c' not allowed for inference
    ("megatron:d2e4", "A014", 11),                     # 2 % 4 != 0, points at 'e'
    ("sglang:d0", "A007", 8),                          # points at the '0'
    ("vllm", "A005", 4),
    ("sglang.d4", "A004", 6),                          # points at the '.'
    # extra rules from the brief
    ("", "A001", 0),
    ("   ", "A001", 0),
    ("sgl:d4", "A003", 0),
    ("sglang:d", "A007", 8),
    ("sglang:", "A005", 7),
    ("sglang:d2d4", "A008", 9),
    ("megatron:d2p2d4", "A008", 13),
    ("fsdp[actor]:d4|fsdp:d4", "A011", 15),            # non-first member unnamed
    ("fsdp[actor]:d4|fsdp[critic]:d2", "A013", 15),    # colocated world mismatch
    ("sglang[a]:d1+fsdp[b]:d1+fsdp[c]:d1+fsdp:d1", "A010", 35),
    ("fsdp[]:d4", "A009", 5),
    ("fsdp[actor:d4", "A004", 10),
    ("sglang:d2+", "A004", 10),
    ("sglang:d2++fsdp:d4", "A004", 10),
    ("sglang:d2x2", "A006", 9),
    ("sglang:d2)", "A004", 9),
    ("sglang:d2 fsdp:d4", "A006", 10),
    ("sglang:2", "A004", 7),
    ("sglang:d1234567", "A007", 8),
    ("sglang:(attn:d1|ffn:d1)", "A015", 7),
    ("megatron:(attn:d4p2|ffn:d2p1)", "A016", 26),     # points at ffn 'p'
    ("megatron:(attn:d4p2|ffn:d4p1)", "A016", 26),     # ffn p given and different
    ("megatron:(attn:d4p2|ffn:d3p2)", "A017", 20),     # ffn world 6 != attn world 8
    ("megatron:(attn:d4|ffn:t3)", "A017", 18),         # ffn d not derivable: 4 % 3
    ("megatron:(attn:d4e2|ffn:d4)", "A006", 17),       # no 'e' in attn
    ("megatron:(attn:d4|ffn:d4c1)", "A006", 24),       # no 'c' in ffn
    ("megatron:(ffn:d4|attn:d4)", "A004", 10),
    ("megatron:(attn:d4+ffn:d4)", "A004", 17),
    ("megatron:(attn:d4|ffn:d4", "A018", 24),          # the closing parenthesis is missing
    ("megatron:attn:d4|ffn:d4", "A018", 9),            # upstream's parentheses are optional, ours are not
    ("fsdp:(attn:d4|ffn:d4)", "A015", 5),
    ("fsdp:d4e2", "A006", 7),                          # fsdp: e only as 1
    ("sglang:d01", "A007", 8),                         # no leading zeros (upstream's NUMBER)
    ("fsdp[my-actor]:d4", "A009", 5),                  # upstream's NAME: [A-Za-z_][A-Za-z0-9_]*
    ("fsdp[1a]:d4", "A009", 5),
    ("sglang:d2+fsdp[a]:d4|fsdp[c]:d4", "A010", 0),    # three components in all, one unnamed
    ("fsdp:d4\x0bp1", "A004", 7),                      # only space, tab, CR, LF, FF are white space
    ("archon:d2p2e8", "A014", 11),                     # 4 % (p2*e8) != 0
]


@pytest.mark.parametrize(("text", "total", "worlds"), VALID)
def test_valid_examples(text, total, worlds):
    alloc = parse_allocation(text)
    assert alloc.total_devices == total
    assert [s.world for s in alloc.singles()] == worlds


@pytest.mark.parametrize(("text", "code", "offset"), INVALID)
def test_invalid_examples(text, code, offset):
    with pytest.raises(AllocationError) as info:
        parse_allocation(text)
    err = info.value
    assert (err.code, err.offset) == (code, offset), err
    assert err.code in CODES
    assert err.message and err.hint


def test_structure_of_colocated_example():
    alloc = parse_allocation("sglang[rollout]:d2+fsdp[actor]:d4|fsdp[critic]:d4")
    assert alloc == Allocation((
        Group((Single("sglang", "rollout", Dims(d=2)),)),
        Group((Single("fsdp", "actor", Dims(d=4)), Single("fsdp", "critic", Dims(d=4)))),
    ))
    assert [s.kind for s in alloc.singles()] == ["inference", "training", "training"]
    assert alloc.groups[1].world == 4


def test_hybrid_dims_and_derived_ffn_dp():
    (s,) = parse_allocation("megatron:(attn:d4p2t2c2|ffn:d2p2t4e2)").singles()
    assert s.dims == Dims(d=4, p=2, t=2, c=2)
    assert s.ffn == Dims(d=2, p=2, t=4, e=2)
    (s,) = parse_allocation("megatron:(attn:d1p12t4|ffn:p12e4)").singles()
    assert s.ffn == Dims(d=1, p=12, e=4) and s.world == 48
    (s,) = parse_allocation("megatron:(attn:d8|ffn:e2)").singles()
    assert s.ffn == Dims(d=4, e=2)


def test_a_hybrid_may_be_named_as_in_areal_2():
    """AReaL 2.0's grammar names a hybrid MoE allocation (`train_backend_name_hybrid`); 1.0.4's could not."""
    (s,) = parse_allocation("sglang[rollout]:d2+megatron[actor]:(attn:d4p2t2|ffn:d2p2t1e4)").singles()[1:]
    assert (s.name, s.world, s.ffn) == ("actor", 16, Dims(d=2, p=2, t=1, e=4))
    assert parse_role_backend("megatron[actor]:(attn:d4|ffn:e2)").name == "actor"


def test_inference_pp_is_exposed_not_rejected():
    (s,) = parse_allocation("sglang:d2p2").singles()
    assert s.kind == "inference" and s.dims.p == 2 and s.world == 4


def test_backend_lists_and_dims_defaults():
    assert INFERENCE_BACKENDS == ("sglang", "vllm")
    assert TRAINING_BACKENDS == ("fsdp", "megatron", "archon")
    assert Dims().world == 1 and Dims(d=2, c=2, t=2, p=2, e=8).world == 16


@pytest.mark.parametrize("text", ["sglang:d2d4", "fsdp:t2d1t2", "megatron:(attn:d2d2|ffn:d4)"])
def test_repeated_letter_is_rejected(text):
    with pytest.raises(AllocationError) as info:
        parse_allocation(text)
    assert info.value.code == "A008"
    assert text[info.value.offset] in "dt"


def test_whitespace_is_ignored_but_offsets_stay_original():
    alloc = parse_allocation(" sglang : d2 + fsdp : d4 ")
    assert alloc.total_devices == 6
    assert parse_allocation(" megatron : ( attn : d2 | ffn : e2 ) ").singles()[0].ffn == Dims(e=2)
    with pytest.raises(AllocationError) as info:
        parse_allocation("  fsdp : d4 p2")
    assert info.value.offset == 12 and info.value.code == "A006"


def test_error_details():
    with pytest.raises(AllocationError) as info:
        parse_allocation("sgl:d4")
    assert "did you mean sglang?" in info.value.hint
    with pytest.raises(AllocationError) as info:
        parse_allocation("sglang.d4")
    assert "':'" in info.value.hint and "'.'" in info.value.hint
    with pytest.raises(AllocationError) as info:
        parse_allocation("fsdp:d4p2")
    assert info.value.message == "FSDP backend only supports data/tensor/context parallelism"
    with pytest.raises(AllocationError) as info:
        parse_allocation("d4")
    assert info.value.message == "Backend must be explicitly specified"
    with pytest.raises(AllocationError) as info:
        parse_allocation("fsdp[a]:d1+fsdp[a]:d1")
    assert info.value.message.startswith("Duplicate component name")
    assert "A012" in str(info.value)


def _parse_or_located_error(text):
    """The parsed allocation, or None after checking the error is located in the string, coded and hinted."""
    try:
        return parse_allocation(text)
    except AllocationError as err:
        assert 0 <= err.offset <= len(text)
        assert err.code in CODES and err.message and err.hint
        return None


_ALPHABET = list("dtpcex0123456789:+|[]()., ") + ["sglang", "vllm", "fsdp", "megatron", "archon",
                                                     "attn", "ffn", "actor", "sgl"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_ALPHABET), max_size=30).map("".join))
def test_random_strings_only_raise_allocation_error(text):
    alloc = _parse_or_located_error(text)
    if alloc is not None:
        assert alloc.total_devices >= 1


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text_only_raises_allocation_error(text):
    try:
        parse_allocation(text)
    except AllocationError as err:
        assert 0 <= err.offset <= len(text)


_single = st.builds(
    lambda backend, name, dims: f"{backend}{f'[{name}]' if name else ''}:"
    + "".join(f"{letter}{n}" for letter, n in dims),
    st.sampled_from(["sglang", "vllm", "fsdp", "megatron", "archon"]),
    st.one_of(st.none(), st.sampled_from(["actor", "critic", "ref", "rollout"])),
    st.lists(st.tuples(st.sampled_from("dtpce"), st.integers(0, 4)), min_size=1, max_size=4),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(_single, min_size=1, max_size=3).map("|".join), min_size=1, max_size=4)
       .map("+".join))
def test_grammar_shaped_strings(text):
    """Strings built from the grammar either parse consistently or fail with AllocationError."""
    alloc = _parse_or_located_error(text)
    if alloc is not None:
        assert alloc.total_devices == sum(g.members[0].dims.world for g in alloc.groups)
        for group in alloc.groups:
            assert len({m.world for m in group.members}) == 1
