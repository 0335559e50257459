"""Reads back what a real upstream SFT run wrote under its fileroot, for the training tests' assertions.

Run by tests/upstream_training.py in the AReaL venv: `python inspect_training.py FILEROOT TINY_DIR`; prints one JSON
object: the training loss per step from the stats logger's TensorBoard records, the saver's checkpoint folders,
and the last checkpoint loaded back with transformers (its mean loss on the answer tokens of the training rows,
beside the initial model's, and how many of its tensors differ from the initial weights)."""
from __future__ import annotations

import json
import struct
import sys
from pathlib import Path


def scalars(events: Path) -> dict[str, dict[int, float]]:
    """Every scalar of a TensorBoard event file (TFRecord framing: length, its crc, the Event, its crc)."""
    from tensorboardX.proto.event_pb2 import Event

    out: dict[str, dict[int, float]] = {}
    data, at = events.read_bytes(), 0
    while at < len(data):
        (length,) = struct.unpack_from("<Q", data, at)
        event = Event.FromString(data[at + 12:at + 12 + length])
        at += 12 + length + 4
        for value in event.summary.value:
            out.setdefault(value.tag, {})[event.step] = value.simple_value
    return out


def answer_loss(model, tokenizer, rows: list[dict]) -> float:
    """Mean negative log-likelihood of the answer tokens given the question (what SFT trains)."""
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for row in rows:
            prompt = tokenizer.encode(row["question"])
            ids = tokenizer.encode(row["question"] + row["answer"] + tokenizer.eos_token)
            logits = model(torch.tensor([ids])).logits[0, :-1]
            nll = torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]), reduction="none")
            total += nll[len(prompt) - 1:].sum().item()
            count += len(ids) - len(prompt)
    return total / count


def main(fileroot: Path, tiny: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    events = sorted((fileroot / "tensorboard").glob("events.out.tfevents.*"))
    checkpoints = sorted(fileroot.glob("checkpoints/*/*/*/default/*"), key=lambda p: p.stat().st_mtime)
    rows = [json.loads(line) for line in (tiny / "gsm8k" / "main" / "train.jsonl").read_text().splitlines()]
    initial = AutoModelForCausalLM.from_pretrained(tiny / "model")
    report = {"events": [str(p) for p in events], "checkpoints": [str(p) for p in checkpoints],
              "loss": {}, "initial_loss": answer_loss(initial, AutoTokenizer.from_pretrained(tiny / "model"), rows)}
    if events:
        report["loss"] = scalars(events[-1]).get("sft/loss/avg", {})
    if checkpoints:
        trained = AutoModelForCausalLM.from_pretrained(checkpoints[-1])
        report["trained_loss"] = answer_loss(trained, AutoTokenizer.from_pretrained(checkpoints[-1]), rows)
        before = initial.state_dict()
        report["changed_tensors"] = sum(not before[k].equal(v) for k, v in trained.state_dict().items())
        report["tensors"] = len(before)
    print(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
