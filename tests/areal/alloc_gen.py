"""A seeded generator of allocation strings, valid and subtly invalid, for the grammar parity test.

Used by test_parity.py. Builds strings from the grammar's parts (backends, names, dims, hybrid sections, '+'
and '|'), then mutates some of them character by character, so both sides see near-misses, not just noise."""
from __future__ import annotations

import random

BACKENDS = ["sglang", "vllm", "fsdp", "megatron", "archon"]
ODD_BACKENDS = ["SGLang", "fsd", "torch", "", "megatron2"]
NAMES = ["actor", "rollout", "critic", "ref", "a", "_x", "r2", "Actor_1"]
ODD_NAMES = ["1a", "my-actor", "", "a.b", "ä"]
SIZES = ["1", "2", "4", "8", "3", "16", "12"]
ODD_SIZES = ["0", "01", "", "1000000", "-1"]
SPACES = [" ", "  ", "\t", "\n", "\x0b", "\u00a0"]
MUTATION_CHARS = ":[]()|+dtpcexa0123456789 ."


class AllocationGenerator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def pick(self, common: list, odd: list, odd_rate: float = 0.05) -> str:
        return self.rng.choice(odd if odd and self.rng.random() < odd_rate else common)

    def dims(self, letters: str, count: int | None = None) -> str:
        count = min(count or self.rng.choice([1, 1, 2, 3, 3, 4]), len(letters))
        chosen = self.rng.sample(letters, count) if self.rng.random() < 0.9 else \
            [self.rng.choice(letters) for _ in range(count)]  # repeated letters now and then
        if self.rng.random() < 0.03:
            chosen[-1] = self.rng.choice("xyz")
        return "".join(letter + self.pick(SIZES, ODD_SIZES) for letter in chosen)

    def hybrid(self) -> str:
        attn, ffn = self.dims("cdtp", self.rng.choice([1, 2, 3])), self.dims("detp", self.rng.choice([1, 2, 3]))
        if self.rng.random() < 0.5:  # a shape that satisfies the pipeline and world-size rules
            d, t, p, e = (self.rng.choice([1, 2, 4]) for _ in range(4))
            attn, ffn = f"d{d * e}t{t}p{p}", f"p{p}t{t}e{e}"
        left, right = ("(", ")") if self.rng.random() < 0.85 else self.rng.choice([("", ""), ("(", ""), ("", ")")])
        return f"{left}attn:{attn}|ffn:{ffn}{right}"

    def single(self, named: bool | None = None, dims: str | None = None) -> str:
        backend = self.pick(BACKENDS, ODD_BACKENDS, 0.03)
        named = self.rng.random() < 0.4 if named is None else named
        name = f"[{self.pick(NAMES, ODD_NAMES)}]" if named else ""
        if backend in ("megatron", "archon", "fsdp") and self.rng.random() < 0.15:
            return f"{backend}{name}:{self.hybrid()}"
        letters = {"sglang": "dtp", "vllm": "dtp"}.get(backend, "dptce")
        if self.rng.random() < 0.1:
            letters = "dptce"
        if self.rng.random() < 0.03:
            return f"{backend}{name}"  # no dims
        return f"{backend}{name}:{dims or self.dims(letters)}"

    def group(self, named: bool | None) -> str:
        members = self.rng.choice([1, 1, 1, 2, 2, 3])
        if members == 1:
            return self.single(named)
        first = self.single(named if self.rng.random() < 0.9 else None)
        same = first.partition(":")[2] if self.rng.random() < 0.6 and not first.endswith(")") else None
        return "|".join([first] + [self.single(self.rng.random() < 0.95, same) for _ in range(members - 1)])

    def allocation(self) -> str:
        groups = self.rng.choice([1, 1, 1, 2, 2, 2, 3, 4])
        named = True if groups >= 3 and self.rng.random() < 0.8 else None
        text = "+".join(self.group(named) for _ in range(groups))
        if self.rng.random() < 0.15:
            text = self.spaced(text)
        if self.rng.random() < 0.2:
            text = self.mutate(text)
        return text

    def spaced(self, text: str) -> str:
        at = self.rng.randrange(len(text) + 1)
        return text[:at] + self.pick([" ", "  "], SPACES[2:], 0.3) + text[at:]

    def mutate(self, text: str) -> str:
        at = self.rng.randrange(max(1, len(text)))
        op = self.rng.choice(["insert", "delete", "replace", "swap"])
        ch = self.rng.choice(MUTATION_CHARS)
        if op == "insert":
            return text[:at] + ch + text[at:]
        if op == "delete":
            return text[:at] + text[at + 1:]
        if op == "replace":
            return text[:at] + ch + text[at + 1:]
        return text[:at] + text[at + 1:at + 2] + text[at:at + 1] + text[at + 2:]

    def batch(self, count: int) -> list[str]:
        seen, out = set(), []
        while len(out) < count:
            text = self.allocation()
            if text not in seen:
                seen.add(text)
                out.append(text)
        return out
