"""Running a compiled local target on this machine: one agent per worker, fail-fast, orderly stop, no orphans.

`execute()` is the runner; `areal run` calls it in the foreground and `areal start` spawns this module
(`python -m areal_compiler.runs.local`) in the background; status/stop/is_active serve the operator verbs."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from areal_compiler.agent.procs import exit_code
from areal_compiler.runs.registry import RunRecord, areal_home, load, save

POLL = 0.2  # seconds between looks at the agents


def run_paths(name: str) -> tuple[Path, Path]:
    """(target folder, run dir) of a local run: $AREAL_HOME/runs/<experiment>/<trial>/{target,run}."""
    experiment, _, trial = name.partition("/")
    base = areal_home() / "runs" / experiment / trial
    return base / "target", base / "run"


def read_launch(target_dir: Path) -> dict:
    """The launch plan of a compiled local folder, checked against its schema; ValueError says what is wrong."""
    from pydantic import ValidationError

    from areal_compiler.targets.local import LaunchPlan

    path = target_dir / "launch.json"
    missing = [n for n in ("launch.json", "plan.json", "agent.pyz") if not (target_dir / n).is_file()]
    if missing:
        raise ValueError(f"{target_dir} is not a compiled local target (no {', '.join(missing)}); "
                         "pass an experiment YAML or the `local/` folder `areal compile` wrote")
    try:
        launch = LaunchPlan.model_validate_json(path.read_bytes())
        plan = json.loads((target_dir / "plan.json").read_text(encoding="utf-8"))
        float(plan["runtime"]["grace_period"])
    except (ValidationError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{target_dir} holds an unusable launch.json or plan.json ({type(exc).__name__}); "
                         "recompile it with `areal compile --target local`") from None
    return launch.model_dump(mode="json")


def _fill(text: str, target_dir: Path, run_dir: Path) -> str:
    return text.replace("{target_dir}", str(target_dir)).replace("{run_dir}", str(run_dir))


def _die_with_parent() -> None:
    """In the agent's child: get SIGTERM when the runner dies (so even `kill -9` of the runner leaves no agent)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Runner:
    """Starts every agent of the launch plan, watches them, stops them; its exit code is the job's."""

    def __init__(self, record: RunRecord, view=None):
        self.record = record
        self.target_dir, self.run_dir = Path(record.target_dir), Path(record.run_dir)
        self.launch = read_launch(self.target_dir)
        self.view = view
        self.agents: dict[str, subprocess.Popen] = {}
        self.codes: dict[str, int] = {}
        self.first_failure: tuple[str, int] | None = None
        self.stop_signal: int | None = None
        self.stopping_since: float | None = None
        plan = json.loads((self.target_dir / "plan.json").read_text(encoding="utf-8"))
        self.grace = float(plan["runtime"]["grace_period"])
        self.gate = f"{plan['gate']['role']}/{plan['gate']['index']}" if plan.get("gate") else None

    def prepare(self) -> str:
        """A fresh run dir with a new per-run token (mode 600); returns the token file's path."""
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        self.run_dir.mkdir(parents=True)
        (self.run_dir / "agents").mkdir()
        token = self.run_dir / "token"
        fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_hex(32))
        return str(token)

    def start(self, token_file: str) -> None:
        for proc in self.launch["processes"]:
            argv = [_fill(a, self.target_dir, self.run_dir) for a in proc["argv"]]
            if argv[0] == "python3":
                argv[0] = sys.executable if Path(sys.executable).name.startswith("python3") else argv[0]
            env = {**os.environ, **proc["env"], "AREAL_AGENT_TOKEN_FILE": token_file}
            (self.run_dir / proc["log"]).parent.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / "agents" / f"{proc['role']}.{proc['index']}.log", "ab") as agent_log:
                self.agents[proc["name"]] = subprocess.Popen(
                    argv, env=env, stdin=subprocess.DEVNULL, stdout=agent_log, stderr=subprocess.STDOUT,
                    start_new_session=True, preexec_fn=_die_with_parent)
        self.record.job = {"runner_pid": os.getpid(), "agents": {n: p.pid for n, p in self.agents.items()}}
        save(self.record)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Ask every live agent to stop (each forwards to its worker group, waits the grace period, kills).

        In order: the gate's agent last, once the others have ended (or after the grace period), so that no
        rollout loses its gate while it is being stopped."""
        if self.stopping_since is None:
            self.stopping_since = time.monotonic()
        others_left = any(p.poll() is None for n, p in self.agents.items() if n != self.gate)
        late = time.monotonic() - self.stopping_since > self.grace
        for name, proc in self.agents.items():
            if proc.poll() is None and (name != self.gate or not others_left or late or sig == signal.SIGKILL):
                try:
                    os.kill(proc.pid, sig)
                except ProcessLookupError:
                    pass

    def _on_signal(self, signum, frame) -> None:
        self.stop_signal = signum
        self.stop()

    def watch(self) -> None:
        while len(self.codes) < len(self.agents):
            ended = [name for name, proc in self.agents.items() if name not in self.codes and proc.poll() is not None]
            for name in sorted(ended, key=self._ended_at):  # the order they really ended, not the poll order
                code = exit_code(self.agents[name].returncode)
                self.codes[name] = code
                if self.view:
                    self.view.exited(name, code)
                if code != 0 and self.first_failure is None and self.stop_signal is None:
                    self.first_failure = (name, code)
                    if self.launch["fail_fast"]:
                        self.stop()
            if self.stopping_since is not None:
                stuck = time.monotonic() - self.stopping_since > 2 * self.grace + 5
                self.stop(signal.SIGKILL if stuck else signal.SIGTERM)  # the gate's turn; or kill the stuck
            if self.view:
                self.view.tick()
            time.sleep(POLL)

    def _ended_at(self, name: str) -> str:
        """When the worker ended, as its agent recorded it (ISO-8601 UTC sorts in time order)."""
        role, _, index = name.partition("/")
        try:
            state = json.loads((self.run_dir / "state" / f"{role}.{index}.json").read_text(encoding="utf-8"))
            return str(state.get("finished_at") or "~")
        except (OSError, ValueError):
            return "~"  # no record: after every recorded end

    def execute(self) -> int:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            self.start(self.prepare())
            if self.view:
                self.view.started(self.agents)
            self.watch()
        finally:
            self.stop()
            for s, handler in previous.items():
                signal.signal(s, handler)
        return self.finish()

    def finish(self) -> int:
        if self.stop_signal is not None:
            outcome, code = "stopped", 128 + self.stop_signal
        elif self.first_failure is not None:
            outcome, code = "failed", self.first_failure[1]
        else:
            outcome, code = "completed", 0
        self.record.outcome, self.record.exit_code = outcome, code
        self.record.job = {**self.record.job, "exit_codes": self.codes,
                           **({"first_failure": self.first_failure[0]} if self.first_failure else {})}
        save(self.record)
        if self.view:
            self.view.finished(outcome, code, self.first_failure)
        return code


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _runs(pid: int | None, marker: bytes) -> bool:
    """The pid is alive AND is still our process (its command line names `marker`): pids get reused."""
    if not pid_alive(pid):
        return False
    try:
        return marker in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _runner_alive(record: RunRecord) -> bool:
    return _runs(record.job.get("runner_pid"), b"areal_compiler")


def _live_agents(record: RunRecord) -> list[int]:
    return [pid for pid in record.job.get("agents", {}).values() if _runs(pid, b"agent.pyz")]


def is_active(record: RunRecord) -> bool:
    return record.outcome is None and _runner_alive(record)


def status(record: RunRecord) -> str:
    if record.outcome:
        return record.outcome
    if is_active(record):
        return "running"
    return "crashed" if record.job.get("runner_pid") else "starting"  # "starting": claimed, runner not up yet


def stop(record: RunRecord, force: bool) -> str:
    """Stop a local run: SIGTERM the runner (it stops the agents in order); --force kills what is left."""
    if not is_active(record) and not _live_agents(record):
        return "already stopped"
    runner = record.job.get("runner_pid")
    targets = [runner] if _runner_alive(record) else _live_agents(record)  # the runner gone: its agents
    for pid in targets:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        plan = json.loads((Path(record.target_dir) / "plan.json").read_text(encoding="utf-8"))
        grace = float(plan["runtime"]["grace_period"])
    except (OSError, ValueError, KeyError, TypeError):
        grace = 10.0
    deadline = time.monotonic() + 2 * grace + 5
    while time.monotonic() < deadline and (_runner_alive(record) or _live_agents(record)):
        time.sleep(POLL)
    if force:
        for pid in _live_agents(record):
            try:
                os.killpg(pid, signal.SIGKILL)  # an agent leads its own process group
            except ProcessLookupError:
                pass
        if _runner_alive(record):
            os.kill(runner, signal.SIGKILL)
    elif _runner_alive(record) or _live_agents(record):
        return "still stopping; `areal stop --force` kills what is left"
    fresh = load(record.name)
    if fresh.outcome is None:
        fresh.outcome = "stopped"
        save(fresh)
    return "stopped"


def main(argv: list[str]) -> int:
    """`python -m areal_compiler.runs.local RUN_NAME`: the detached runner that `areal start` spawns."""
    record = load(argv[0])
    return Runner(record).execute()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
