"""Makes a tiny causal LM and a tiny SFT data set locally, for real upstream AReaL training on CPU (no download).

Run by tests/areal/test_training.py in the AReaL venv: `python make_tiny.py OUT`, writes OUT/model (a Hugging Face
folder: Qwen2 weights from a fixed seed, a word-level tokenizer) and OUT/gsm8k (question/answer rows in the
layout of openai/gsm8k's `main` config, which upstream's get_custom_dataset reads from a local path)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

SPECIALS = ["<|endoftext|>", "<unk>"]
NUMBERS = [str(n) for n in range(21)]
WORDS = ["what", "is", "plus", "?", "the", "answer", "####"]


def examples() -> list[dict]:
    """Sums of small numbers, each answered the same way (so a tiny model learns the pattern in a few steps)."""
    return [{"question": f"what is {a} plus {b} ? ", "answer": f"the answer is #### {a + b}"}
            for a in range(1, 9) for b in range(1, 5)]


def tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIALS + WORDS + NUMBERS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                   unk_token="<unk>", model_max_length=128)


def model(vocab_size: int, eos: int):
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         tie_word_embeddings=False, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos,
                         dtype="float32")
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def main(out: Path) -> None:
    tok = tokenizer()
    tok.save_pretrained(out / "model")
    model(len(tok), tok.eos_token_id).save_pretrained(out / "model")
    data = out / "gsm8k"
    (data / "main").mkdir(parents=True, exist_ok=True)
    rows = examples()
    for split, part in (("train", rows), ("test", rows[::4])):
        (data / "main" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf-8")
    (data / "README.md").write_text(
        "---\nconfigs:\n- config_name: main\n  data_files:\n  - split: train\n    path: main/train.jsonl\n"
        "  - split: test\n    path: main/test.jsonl\n---\nA tiny arithmetic set in openai/gsm8k's layout.\n",
        encoding="utf-8")
    print(json.dumps({"model": str(out / "model"), "dataset": str(data), "rows": len(rows), "vocab": len(tok)}))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_tiny.py OUT_DIR")
    main(Path(sys.argv[1]))
