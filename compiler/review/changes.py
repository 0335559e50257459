"""The shape of a review: a Change per thing that differs, the sections they fall in, and the catch-all that lists
every plan value no section described ("other settings changed"), so no difference of the plans goes unsaid.

Used by compare.py, workers.py and asks.py (which make changes) and report.py (which prints them)."""
from __future__ import annotations

import json
from dataclasses import dataclass

from areal_compiler.plan import Plan

# (key, title), in the order of weight in which a review shows them
SECTIONS = (
    ("roles", "Roles"),
    ("totals", "Totals"),
    ("placement", "Placement"),
    ("slurm", "Slurm: what the cluster is asked for"),
    ("kubernetes", "Kubernetes: what the cluster is asked for"),
    ("ray", "Ray: what the cluster is asked for"),
    ("targets", "Targets compiled for"),
    ("commands", "Commands"),
    ("environment", "Environment and secrets"),
    ("ports", "Ports"),
    ("gate", "Staleness gate and how the job ends"),
    ("other", "Other settings changed"),
)
TITLES = dict(SECTIONS)
EVENTS = ("added", "removed", "moved")  # a `what` that names an event, not a setting
ANY = "*"  # in a covered path: any one key


@dataclass(frozen=True)
class Change:
    section: str  # a key of SECTIONS; "" for a change shown elsewhere (it only covers its paths)
    subject: str  # a role, workers ("rollout/0-3"), a Slurm component, a key path
    what: str  # the setting that changed, or an event (EVENTS)
    old: str | None  # as shown to the reader; None: not there before
    new: str | None  # None: not there after
    covers: tuple[tuple, ...] = ()  # the plan's paths this change describes (ANY matches one key)

    def to_json(self) -> dict:
        return {"section": self.section, "subject": self.subject, "what": self.what, "old": self.old,
                "new": self.new}


def show(value) -> str:
    """A value as a reader sees it: text as it is, everything else as compact JSON (a date in an upstream config,
    which YAML reads as one, as its text)."""
    if isinstance(value, str):
        return value
    if value is None:
        return "(none)"
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)


def plan_data(plan: Plan) -> dict:
    """The plan as plain data, its workers keyed by role and index (so worker paths mean the same on both sides)."""
    data = plan.dump()
    site = data["targets"].get("slurm", {}).get("template")
    if site:  # a site template's change shows as its sha256 (and in its own file's diff), not its whole text
        del site["text"]
    workers: dict = {}
    for w in data.pop("workers"):
        workers.setdefault(w.pop("role"), {})[str(w.pop("index"))] = w
    return {**data, "workers": workers}


def leaves(data, path: tuple = ()) -> dict[tuple, object]:
    """path -> value of every leaf: a value that is not a mapping, or an empty mapping."""
    if isinstance(data, dict) and data:
        out: dict[tuple, object] = {}
        for key, value in data.items():
            out.update(leaves(value, path + (key,)))
        return out
    return {path: data}


MISSING = object()


def differing(old: dict, new: dict) -> dict[tuple, tuple]:
    """path -> (old value, new value) of every leaf that differs (MISSING where one side has none)."""
    a, b = leaves(old), leaves(new)
    return {p: (a.get(p, MISSING), b.get(p, MISSING)) for p in {**a, **b} if a.get(p, MISSING) != b.get(p, MISSING)}


def _covered(path: tuple, pattern: tuple) -> bool:
    return len(pattern) <= len(path) and all(q == ANY or q == p for q, p in zip(pattern, path))


# Paths every change of the experiment moves with it: the experiment's hash and the run id made of it.
IDENTITY = (("experiment_sha256",), ("run_id",))


def uncovered(diff: dict[tuple, tuple], changes: list[Change]) -> dict[tuple, tuple]:
    """The differing paths no change covers. Exact patterns are looked up by each prefix of a path (a plan with
    thousands of workers moved has thousands of them); the few with ANY are matched one by one."""
    patterns = [p for c in changes for p in c.covers] + list(IDENTITY)
    exact = {p for p in patterns if ANY not in p}
    loose = [p for p in patterns if ANY in p]
    return {path: values for path, values in diff.items()
            if not any(path[:k] in exact for k in range(1, len(path) + 1))
            and not any(_covered(path, q) for q in loose)}


def key_path(path: tuple) -> str:
    """A plan path in the experiment's words: targets.slurm.time -> slurm.time."""
    if path[:1] == ("targets",):
        path = path[1:]
    return ".".join(str(p) for p in path)


def other_settings(diff: dict[tuple, tuple], changes: list[Change]) -> list[Change]:
    """Every differing plan value no change describes, by its key path."""
    out = []
    for path, (old, new) in sorted(uncovered(diff, changes).items(), key=lambda item: key_path(item[0])):
        out.append(Change("other", key_path(path), "", None if old is MISSING else show(old),
                          None if new is MISSING else show(new), (path,)))
    return out
