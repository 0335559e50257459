"""A toy third target for tests/test_targets.py: a module registered at test time, never shipped.

It proves a target is one module (NAME, ENTRY, BACKEND, check, render, and a run backend) and that the CLI needs
no change to compile, submit, inspect and stop its runs."""
from __future__ import annotations

import json
from pathlib import Path

from areal_compiler.runs.base import OperatorError, RunBackend, RunState
from areal_compiler.runs.registry import save
from areal_compiler.targets import Artifact, TargetError

NAME = "toy"
ENTRY = "toy.json"
BACKEND = "toy_target"


def check(plan) -> list[TargetError]:
    return [TargetError("the toy target takes at most 4 workers", ("roles",))] if len(plan.workers) > 4 else []


def render(plan, attachments) -> list[Artifact]:
    body = {"run": plan.name, "workers": [w.name for w in plan.workers]}
    return [Artifact(ENTRY, (json.dumps(body, sort_keys=True) + "\n").encode())]


class Backend(RunBackend):
    """A 'cluster' that is a JSON file: submitting writes the job, stopping marks it stopped."""

    target = NAME

    def submit(self, folder: Path, record, dry_run: bool = False, address: str | None = None) -> dict:
        if dry_run:
            return {"verdict": "the toy cluster would run it"}
        if address == "refuse":
            raise OperatorError("toy_refused", "the toy cluster refuses", "denied")
        record.job = {"toy_job": json.loads((folder / ENTRY).read_text())["run"]}
        save(record)
        return dict(record.job)

    def state(self, record) -> RunState:
        return RunState(record.outcome) if record.outcome else RunState.PENDING

    def stop(self, record, force: bool) -> str:
        if record.outcome:
            return "already stopped"
        record.outcome = RunState.STOPPED.value
        save(record)
        return "stopped"
