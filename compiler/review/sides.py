"""The two versions `areal diff` compares: two files, or one file and the same file at a git revision (read with
`git show`, no checkout); each compiled exactly as `areal compile` would, then compared (review).

Called by cli.py (`areal diff`). Usage problems (a missing git, an unknown revision) raise click.UsageError."""
from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import click

from areal_compiler.pipeline import Compiled, compile_file
from areal_compiler.plan import Plan
from areal_compiler.plan.picture import Marks
from areal_compiler.review import asks, compare, workers
from areal_compiler.review.changes import MISSING, Change, differing, other_settings, plan_data, show


@dataclass
class Side:
    label: str  # how the reader is told which version: the file, or FILE@REV
    result: Compiled | None  # None: the file does not exist at that revision
    revision: str | None = None

    @property
    def plan(self) -> Plan | None:
        return self.result.plan if self.result is not None else None

    @property
    def targets(self) -> list[str]:
        return sorted({rel.split("/", 1)[0] for rel in self.result.artifacts}) if self.result is not None else []

    @property
    def backends(self) -> dict[str, str]:
        """role -> the backend string as written (the plan keeps only the engine's name)."""
        data = self.result.source.data if self.result is not None else None
        roles = data.get("roles") if isinstance(data, dict) else None
        return {name: role.get("backend") for name, role in (roles or {}).items() if isinstance(role, dict)}

    @property
    def attachments(self) -> dict[str, bytes]:
        return getattr(self.result.source, "attachments", None) or {} if self.result is not None else {}


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True)
    except FileNotFoundError:
        raise click.UsageError("--base needs git, which is not installed (or not on PATH)") from None


def at_revision(file: str, revision: str) -> bytes | None:
    """FILE's bytes at REVISION of the repository it is in; None when the file did not exist there."""
    if revision.startswith("-"):
        raise click.UsageError(f"--base {revision}: a revision does not start with `-`")
    path = Path(file)
    folder = path.parent if path.parent.is_dir() else Path(".")
    found = _git(folder, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    if found.returncode != 0:
        why = found.stderr.decode(errors="replace").strip().splitlines()
        raise click.UsageError(f"--base {revision}: " + (why[-1] if why else "no such revision in the repository "
                               f"of {file}; fetch it first (e.g. `git fetch origin main`)"))
    shown = _git(folder, "show", f"{revision}:./{path.name}")
    if shown.returncode == 0:
        return shown.stdout
    listed = _git(folder, "ls-tree", "--name-only", revision, "--", path.name)
    if listed.returncode == 0 and not listed.stdout.strip():
        return None
    raise click.UsageError(f"cannot read {file} at {revision}: {shown.stderr.decode(errors='replace').strip()}")


def read_sides(files: tuple[str, ...], base: str | None, targets) -> tuple[Side, Side]:
    if base is None and len(files) != 2:
        raise click.UsageError("give two experiment files (OLD NEW), or one file and --base REV")
    if base is not None and len(files) != 1:
        raise click.UsageError("--base REV compares one file with itself at REV: give one file")
    if base is None:
        return Side(files[0], compile_file(files[0], targets)), Side(files[1], compile_file(files[1], targets))
    new = Side(files[0], compile_file(files[0], targets))
    old_bytes = at_revision(files[0], base)
    label = f"{files[0]}@{base}"
    if old_bytes is None:
        return Side(label, None, base), new
    with tempfile.TemporaryDirectory(prefix="areal-diff-") as folder:
        copy = Path(folder) / Path(files[0]).name
        copy.write_bytes(old_bytes)
        _named_at_revision(files[0], old_bytes, base, Path(folder))
        return Side(label, compile_file(str(copy), targets, name=label), base), new


def _named_at_revision(file: str, text: bytes, revision: str, folder: Path) -> None:
    """The files the experiment names (a site template), as they were at REVISION, beside its copy in FOLDER."""
    import yaml

    from areal_compiler.inputs import named

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return  # compiling the copy says what is wrong with it
    for relative in named(data):
        content = at_revision(str(Path(file).parent / relative), revision)
        if content is not None and ".." not in Path(relative).parts:
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_bytes(content)


@dataclass
class Review:
    old: Side
    new: Side
    changes: list[Change] = field(default_factory=list)
    marks: Marks = field(default_factory=Marks)

    @property
    def shown(self) -> list[Change]:
        return [c for c in self.changes if c.section]


def review(old: Side, new: Side) -> Review:
    """Every change from OLD to NEW, in the job's terms; the rest as other settings (by key path)."""
    a, b = old.plan, new.plan
    moves, marks = workers.placement(a, b)
    out = compare.roles(a, b, (old.backends, new.backends)) + compare.totals(a, b) + moves
    for target in dict.fromkeys([*new.targets, *old.targets]):
        out += asks.changes(target, a if target in old.targets else None, b if target in new.targets else None)
    if a is None or b is None:  # a file new at the base revision: its roles and totals say it all
        return Review(old, new, out, marks)
    out += compare.secrets(a, b) + workers.ports(a, b) + compare.gate(a, b) + compare.run_name(a, b)
    out += other_settings(differing(plan_data(a), plan_data(b)), out) + _attachments(old, new)
    if not any(c.section for c in out) and a.run_id != b.run_id:
        out.append(Change("other", "run id", "", a.run_id, b.run_id))  # the normalized experiment changed, no more
    return Review(old, new, out, marks)


def _attachments(old: Side, new: Side) -> list[Change]:
    """An imported upstream config travels with the artifacts: its changed keys (or that it changed)."""
    import yaml

    a, b = old.attachments, new.attachments
    out = []
    for name in dict.fromkeys([*b, *a]):
        if a.get(name) == b.get(name):
            continue
        try:
            x, y = (yaml.safe_load(s[name]) if name in s else {} for s in (a, b))
        except yaml.YAMLError:
            x = y = None
        if not (isinstance(x, dict) and isinstance(y, dict)):
            out.append(Change("other", name, "", "(before)" if name in a else None, "(after)" if name in b else None))
            continue
        for path, values in sorted(differing(x, y).items(), key=lambda item: str(item[0])):
            old_value, new_value = (None if v is MISSING else show(v) for v in values)
            out.append(Change("other", f"{name}: {'.'.join(map(str, path))}", "", old_value, new_value))
    return out
