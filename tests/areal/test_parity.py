"""Grammar parity: our allocation parser against upstream AReaL 1.0.4's own (areal/api/alloc_mode.py).

Every input is parsed both as a whole allocation_mode string (upstream `_AllocationMode.from_str`, ours
`parse_allocation`) and as one role's backend (upstream `ModelAllocation.from_str`, ours `parse_role_backend`).
Both must accept or reject alike and agree on every component's backend, name, dims, world size and colocation
target, except for the deliberate departures below (docs/experiment-format.md,
"Choices where upstream is silent or inconsistent")."""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from alloc_gen import AllocationGenerator
from areal_compiler.spec.allocation import AllocationError, parse_allocation
from areal_compiler.spec.shape import parse_role_backend

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "areal"
GENERATED = 4000
SEED = 20261202

# domain.md section 3: the examples upstream's grammar is documented with.
DOMAIN_EXAMPLES = [
    "sglang:d4p2t2", "sglang:d2+fsdp:d4", "vllm:d2t4+megatron:d2p2t1", "sglang[rollout]:d2+fsdp[actor]:d4|fsdp[critic]:d4",
    "megatron:(attn:d4p2t2c2|ffn:d2p2t4e2)", "megatron:(attn:d1p12t4|ffn:d1p12e4)", "fsdp:d4c2", "archon:d2",
    "megatron:d4e2", "fsdp:d4p2", "fsdp:d2e2", "sglang:d2+fsdp[actor]:d4+fsdp:d4", "sglang[actor]:d2+fsdp[actor]:d4",
    "fsdp:d4|fsdp:d4", "d1", "d2p2t1", "[actor]:d4", "sglang:d4+d4", "vllm:d4+[actor]:d4", "sglang:d2c2",
    "megatron:d2e4", "sglang:d0", "vllm", "sglang.d4",
]

# Deliberate departures: (name, why, test on our AllocationError and the text). Only upstream-accepts /
# we-reject cases may be departures; we never accept what upstream rejects.
DEPARTURES = [
    ("repeated letter", "upstream silently keeps the last of `d2d4`; a repeated letter is a typo", lambda e, t: e.code == "A008"),
    ("unnamed colocation target", "upstream accepts an unnamed first member of a `|` group, leaving the others "
     "colocated with no target", lambda e, t: e.code == "A011"),
    ("huge size", "sizes above 999999 are typos (upstream takes any integer)", lambda e, t: e.code == "A007"
     and re.search(r"[1-9][0-9]{6}", t)),
    ("hybrid without parentheses", "upstream's parentheses around attn|ffn are optional, even one of the pair; "
     "without them `|` reads as colocation", lambda e, t: e.code == "A018"),
    ("hybrid on fsdp", "hybrid MoE dims on FSDP (which has no expert parallelism) mean nothing",
     lambda e, t: e.code == "A015" and "fsdp" in t),
]


def _corpus_strings() -> list[str]:
    assert CORPUS.is_dir(), f"the shared corpus is missing: {CORPUS}"
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("backend", "allocation_mode") and isinstance(value, str) and "${" not in value:
                    found.append(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
    for path in sorted(CORPUS.glob("*.yaml")):
        walk(yaml.safe_load(path.read_text(encoding="utf-8")))
    return found


def _component(single, colocated_with) -> dict:
    ffn = single.ffn
    return {"backend": single.backend, "name": single.name, "d": single.dims.d, "t": single.dims.t,
            "p": single.dims.p, "c": single.dims.c, "e": ffn.e if ffn else single.dims.e,
            "etp": ffn.t if ffn else 1, "world": single.world, "colocated_with": colocated_with}


def ours(kind: str, text: str) -> dict:
    try:
        if kind == "backend":
            single = parse_role_backend(text)
            return {"ok": True, "allocations": [_component(single, None)], "world": single.world}
        allocation = parse_allocation(text)
    except AllocationError as exc:
        return {"ok": False, "exc": exc}
    components = [_component(m, g.members[0].name if i else None)
                  for g in allocation.groups for i, m in enumerate(g.members)]
    return {"ok": True, "allocations": components, "world": allocation.total_devices}


# Forms AReaL 2.0's grammar added (areal/api/alloc_mode.py on upstream main): we accept them, 1.0.4 rejects them.
NEWER = [("named hybrid", re.compile(r"(megatron|archon|fsdp)\s*\[\s*\w+\s*\]\s*:\s*\("))]


def _newer(text: str) -> str | None:
    return next((name for name, pattern in NEWER if pattern.search(text)), None)


def _departure(mine: dict, text: str) -> str | None:
    exc = mine.get("exc")
    return next((name for name, _, applies in DEPARTURES if exc is not None and applies(exc, text)), None)


def _disagreement(kind: str, text: str, mine: dict, theirs: dict) -> str | None:
    if mine["ok"] and theirs["ok"]:
        if (mine["allocations"], mine["world"]) == (theirs["allocations"], theirs["world"]):
            return None
        return f"{kind} {text!r}: ours {mine['allocations']} world {mine['world']}, upstream " \
               f"{theirs['allocations']} world {theirs['world']}"
    if not mine["ok"] and not theirs["ok"]:
        return None
    if mine["ok"]:
        return f"{kind} {text!r}: we accept, upstream rejects ({theirs['error']})"
    return f"{kind} {text!r}: upstream accepts, we reject ({mine['exc']})"


@pytest.fixture(scope="module")
def compared(upstream):
    corpus = _corpus_strings()
    inputs = list(dict.fromkeys(corpus + DOMAIN_EXAMPLES + AllocationGenerator(SEED).batch(GENERATED)))
    requests = [(kind, text) for text in inputs for kind in ("mode", "backend")]
    answers = upstream({"parse": requests})["parse"]
    assert len(answers) == len(requests)
    return corpus, [(kind, text, ours(kind, text), theirs) for (kind, text), theirs in zip(requests, answers)]


def test_corpus_backends_agree_with_upstream(compared):
    corpus, results = compared
    assert len(corpus) >= 50, "the corpus should give dozens of backend strings"
    wrong = [_disagreement(k, t, m, u) for k, t, m, u in results if t in corpus]
    wrong = [w for w in wrong if w]
    assert not wrong, "\n".join(wrong)


def test_generated_strings_agree_with_upstream_except_departures(compared):
    _, results = compared
    wrong, departures, verdicts = [], Counter(), Counter()
    for kind, text, mine, theirs in results:
        verdicts[(kind, mine["ok"], theirs["ok"])] += 1
        problem = _disagreement(kind, text, mine, theirs)
        if problem and theirs["ok"] and not mine["ok"] and _departure(mine, text):
            departures[_departure(mine, text)] += 1
        elif problem and mine["ok"] and not theirs["ok"] and _newer(text):
            departures[_newer(text)] += 1
        elif problem:
            wrong.append(problem)
    assert not wrong, f"{len(wrong)} disagreements:\n" + "\n".join(wrong[:40])
    # The comparison means something only if both verdicts are common.
    assert verdicts[("mode", True, True)] > 300 and verdicts[("mode", False, False)] > 300, verdicts
    assert verdicts[("backend", True, True)] > 300, verdicts
    print(f"parity: {len(results)} parses compared, departures {dict(departures)}, verdicts {dict(verdicts)}")


def test_every_departure_is_exercised(compared):
    """An allow-listed departure that no input reaches is dead (or hides a rule that changed)."""
    _, results = compared
    reached = {_departure(m, t) for _, t, m, u in results if u["ok"] and not m["ok"]}
    assert {name for name, _, _ in DEPARTURES} <= reached
