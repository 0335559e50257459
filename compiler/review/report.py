"""How `areal diff` prints a review: a headline, then the changes by section in order of weight, as text, as
markdown (a PR comment or a CI job summary: the headline, a table, the details folded) or as JSON data.

Called by cli.py (`areal diff`); reads only the review."""
from __future__ import annotations

import re

from areal_compiler.plan.view import plural
from areal_compiler.review.changes import EVENTS, SECTIONS, TITLES, Change
from areal_compiler.review.sides import Review

UNFOLDED = ("roles", "totals", "placement", "targets")  # markdown: the table; every other section is folded
HEADLINE_TOTALS = ("accelerator", "nodes", "devices", "device-hours")


def headline(review: Review, arrow: str = "->") -> str:
    """One line: roles added, removed and changed; the totals that matter; workers moved; what else changes."""
    if review.old.result is None:
        return f"new experiment (not in {review.old.revision})"
    shown = review.shown
    parts = []
    for event in ("added", "removed"):
        names = [c.subject for c in shown if c.section == "roles" and c.what == event]
        if names:
            parts.append(f"{plural(len(names), 'role')} {event} ({', '.join(names)})")
    changed = list(dict.fromkeys(c.subject for c in shown if c.section == "roles" and c.what not in EVENTS))
    if changed:
        parts.append(f"{', '.join(changed)} changed")
    parts += [f"{c.what} {_value(c.old)} {arrow} {_value(c.new)}" for c in shown
              if c.section == "totals" and c.what in HEADLINE_TOTALS]
    whole = {c.subject for c in shown if c.section == "roles" and c.what in ("added", "removed")}
    marks = review.marks
    for event, names in (("moved", marks.moved), ("added", marks.added), ("removed", [n for n, _ in marks.removed])):
        count = sum(name.split("/")[0] not in whole for name in names)  # workers of whole roles: said above
        if count:
            parts.append(f"{plural(count, 'worker')} {event}")
    asked = [title.split(":")[0] for key, title in SECTIONS if key in ("slurm", "kubernetes", "ray")
             and any(c.section == key for c in shown)]
    if asked:
        parts.append(f"{' and '.join(asked)} asked for other resources")
    rest = sorted({TITLES[c.section].lower() for c in shown if c.section in
                   ("commands", "environment", "ports", "gate", "other")})
    if rest:
        parts.append("also: " + ", ".join(rest))
    return "; ".join(parts) if parts else "no change"


def _value(value: str | None) -> str:
    return "(not set)" if value is None else value


def _phrase(c: Change) -> str:
    if c.what in ("added", "removed"):
        value = c.new if c.what == "added" else c.old
        return c.what + (f" ({value})" if value else "")
    if c.what == "moved":
        return f"moved from {c.old} to {c.new}"
    return (f"{c.what} " if c.what else "") + f"{_value(c.old)} -> {_value(c.new)}"


def _by_section(review: Review) -> list[tuple[str, list[Change]]]:
    groups = [(key, [c for c in review.shown if c.section == key]) for key, _ in SECTIONS]
    return [(key, changes) for key, changes in groups if changes]


def text(review: Review) -> str:
    """Nothing when nothing changed (as diff(1)); else the headline and a line per subject and section."""
    if not review.shown:
        return ""
    lines = [f"{review.old.label} -> {review.new.label}: {headline(review)}"]
    for key, changes in _by_section(review):
        lines += ["", TITLES[key]]
        subjects: dict[str, list[str]] = {}
        for c in changes:
            subjects.setdefault(c.subject, []).append(_phrase(c).replace("\n", "\\n"))  # one line per subject
        lines += [f"  {subject}: {'; '.join(parts)}" if subject else f"  {'; '.join(parts)}"
                  for subject, parts in subjects.items()]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """Plain text safe in a markdown table cell."""
    out = text.replace("\\", "\\\\").replace("\n", " ")
    for char in "`*_<>[]|":
        out = out.replace(char, "\\" + char)
    return out


def _code(value: str | None) -> str:
    """A value as inline code in a table cell: pipes escaped, fenced by more backticks than any run inside."""
    if value is None:
        return ""
    value = value.replace("\n", "\\n").replace("|", "\\|")
    longest = max((len(run) for run in re.findall("`+", value)), default=0)
    return f"{'`' * (longest + 1)} {value} {'`' * (longest + 1)}" if longest else f"`{value}`"


def _rows(changes: list[Change]) -> list[str]:
    rows = ["| | change | before | after |", "|---|---|---|---|"]
    previous = None
    for c in changes:
        subject = f"**{_md(c.subject)}**" if c.subject and c.subject != previous else ""
        previous = c.subject
        if c.what in EVENTS:
            rows.append(f"| {subject} | {c.what} | {_code(c.old)} | {_code(c.new)} |")
        else:
            rows.append(f"| {subject} | {_md(c.what)} | {_code(_value(c.old))} | {_code(_value(c.new))} |")
    return rows


def markdown(review: Review) -> str:
    """A PR comment or job summary: a heading, the headline, the weightiest sections as a table, the rest folded."""
    if not review.shown:
        return ""
    out = [f"#### `areal diff` {_md(review.old.label)} → {_md(review.new.label)}", "",
           f"**{_md(headline(review, '→'))}**", ""]
    sections = _by_section(review)
    for key, changes in (s for s in sections if s[0] in UNFOLDED):
        out += [f"**{TITLES[key]}**", "", *_rows(changes), ""]
    for key, changes in (s for s in sections if s[0] not in UNFOLDED):
        out += [f"<details><summary>{TITLES[key]} ({len(changes)})</summary>", "", *_rows(changes), "",
                "</details>", ""]
    return "\n".join(out)


def data(review: Review) -> dict:
    """The `-o json` envelope's data."""
    sides = {name: {"label": side.label, "run_id": side.plan.run_id if side.plan else None}
             for name, side in (("old", review.old), ("new", review.new))}
    return {"changed": bool(review.shown), **sides, "headline": headline(review),
            "changes": [c.to_json() for c in review.shown]}
