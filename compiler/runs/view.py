"""What `areal run` shows while a job runs: worker logs prefixed by role/index, and the workers' state.

Called by runs/local.py's Runner; on a terminal one status line is redrawn in place, otherwise plain lines."""
from __future__ import annotations

import os
import sys
import time
from collections import Counter
from pathlib import Path

import click

REDRAW = 1.0  # seconds between status-line redraws


def use_color(stream) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ


class LogTail:
    """Follows a set of log files (`files()` -> {worker: path}, asked again on every look so new workers appear),
    yielding complete new lines with their worker; `tail` starts each file at its last N lines."""

    def __init__(self, files, only: str | None = None, tail: int | None = None):
        self.files, self.only, self.tail = files, only, tail
        self.offsets: dict[Path, int] = {}
        self.partial: dict[Path, bytes] = {}

    def _wanted(self, name: str) -> bool:
        return not self.only or name == self.only or name.partition("/")[0] == self.only

    def _start(self, path: Path) -> int:
        if self.tail is None:
            return 0
        with open(path, "rb") as fh:
            data = fh.read()
        lines = data.split(b"\n")
        keep = b"\n".join(lines[-(self.tail + 1):]) if self.tail else (lines[-1] if lines else b"")
        return len(data) - len(keep)

    def lines(self):
        for name, path in sorted(self.files().items()):
            if not self._wanted(name) or not path.is_file():
                continue
            if path not in self.offsets:
                self.offsets[path] = self._start(path)
            with open(path, "rb") as fh:
                fh.seek(self.offsets[path])
                data = fh.read(1 << 20)  # at most 1 MiB per look: a huge log never fills memory
            if not data:
                continue
            self.offsets[path] += len(data)
            data = self.partial.pop(path, b"") + data
            *complete, rest = data.split(b"\n")
            if rest:
                self.partial[path] = rest
            for line in complete:
                yield name, line.decode("utf-8", "replace")


class RunView:
    def __init__(self, run_name: str, run_dir: Path, stream_logs: bool):
        self.run_name, self.run_dir, self.stream_logs = run_name, run_dir, stream_logs
        self.tty = sys.stderr.isatty()
        self.color = use_color(sys.stderr)
        logs = run_dir / "logs"
        self.tail = LogTail(lambda: {f"{p.parent.name}/{p.stem}": p for p in logs.glob("*/*.log")})
        self.began = time.monotonic()
        self.last_draw = 0.0
        self.line_shown = False
        self.width = 0  # of the `role/index` prefix: the longest planned name, so every line's `|` aligns

    def say(self, text: str, fg: str | None = None) -> None:
        self.clear()
        click.echo(click.style(text, fg=fg) if self.color and fg else text, err=True)

    def clear(self) -> None:
        if self.line_shown:
            sys.stderr.write("\r\x1b[K")
            self.line_shown = False

    def started(self, agents: dict, processes: list[str]) -> None:
        """AGENTS: the planned workers just started; PROCESSES: every name a log line may carry (forks too)."""
        self.width = max(map(len, processes), default=0)
        self.say(f"areal: {self.run_name}: started {len(agents)} worker(s); logs in {self.run_dir / 'logs'}")

    def tick(self) -> None:
        if self.stream_logs:
            lines = list(self.tail.lines())
            if lines:
                self.clear()
                self.width = max(self.width, *(len(n) for n, _ in lines))  # an unplanned fork widens it once
                for name, line in lines:
                    click.echo(f"{name:<{self.width}} | {line}")
        if self.tty and time.monotonic() - self.last_draw >= REDRAW:
            self.draw()

    def draw(self) -> None:
        from areal_compiler.agent.state import read_run

        try:
            rows = read_run(str(self.run_dir))
        except OSError:
            rows = []
        by_role: dict[str, Counter] = {}
        for row in rows:
            by_role.setdefault(str(row.get("role")), Counter())[row["status"]] += 1
        parts = [f"{role} " + ",".join(f"{n} {s}" for s, n in sorted(c.items())) for role, c in by_role.items()]
        text = f"[{time.monotonic() - self.began:5.1f}s] " + "  |  ".join(parts)
        self.clear()
        sys.stderr.write(text[: os.get_terminal_size(sys.stderr.fileno()).columns - 1])
        sys.stderr.flush()
        self.line_shown, self.last_draw = True, time.monotonic()

    def exited(self, name: str, code: int, stopped: bool = False) -> None:
        if self.stream_logs:
            self.tick()
        if stopped:
            self.say(f"areal: {name} stopped (exit code {code})")
            return
        self.say(f"areal: {name} exited with code {code}", fg=None if code == 0 else "red")
        agent_log = self.run_dir / "agents" / f"{name.replace('/', '.')}.log"
        if code != 0 and agent_log.is_file():  # the agent's own words (set-up errors: bad secret, busy port)
            for line in agent_log.read_text(encoding="utf-8", errors="replace").splitlines()[-3:]:
                self.say(f"  {name} agent: {line}")

    def finished(self, outcome: str, code: int, reason: str) -> None:
        what = reason if reason.startswith(outcome) else f"{outcome} ({reason})" if reason else outcome
        self.say(f"areal: {self.run_name}: {what}, exit code {code}",
                 fg="green" if outcome == "succeeded" else "red")
