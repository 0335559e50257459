"""Running a compiled local target on this machine: one agent per planned worker (the driver included), the
job's fate decided by the agent's outcome module, an orderly stop, no orphans.

`Runner.execute()` is the runner: `areal run` calls it in the foreground, `areal start` spawns this module
(`python -m areal_compiler.runs.local RUN`) detached. `Backend` serves the operator verbs."""
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

from areal_compiler.agent.outcome import Decision, Ended, decide, exit_code_of, stop_stages
from areal_compiler.agent.procs import exit_code
from areal_compiler.agent.state import read_run
from areal_compiler.printing import now_iso
from areal_compiler.runs import local_procs as procs
from areal_compiler.runs.local_host import UNPACKED, say_shared_devices, unpack_agent
from areal_compiler.runs.base import OperatorError, RunBackend, RunState, ended_words, process_names
from areal_compiler.runs.paths import machine_run_dir
from areal_compiler.runs.registry import RunRecord, load, save

POLL = 0.2  # seconds between looks at the agents
# never inherited from the shell: a local run places every logical node on this machine
CLUSTER_VARS = ("AREAL_NODE_HOSTS", "AREAL_NODE_HOSTS_FILE", "AREAL_ALLOCATED_DEVICES", "AREAL_AGENT_TOKEN")


def read_launch(target_dir: Path) -> dict:
    """The launch plan of a compiled local folder, checked against its schema."""
    from pydantic import ValidationError

    from areal_compiler.targets.local_plan import LaunchPlan

    try:
        return LaunchPlan.model_validate_json((target_dir / "launch.json").read_bytes()).model_dump(mode="json")
    except (OSError, ValidationError, ValueError) as exc:
        raise OperatorError("target_unusable", f"{target_dir} holds an unusable launch.json ({type(exc).__name__}); "
                                               "recompile it with `areal compile --target local`") from None


def read_plan(target_dir: Path) -> dict:
    try:
        return json.loads((target_dir / "plan.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OperatorError("target_unusable", f"{target_dir} has no usable plan.json ({exc})") from None


def _fill(text: str, target_dir: Path, run_dir: Path) -> str:
    text = text.replace("{target_dir}/agent.pyz", "{run_dir}/" + UNPACKED)  # the same agent, unpacked (unpack_agent)
    return text.replace("{target_dir}", str(target_dir)).replace("{run_dir}", str(run_dir))


def _die_with_parent() -> None:
    """In the agent's child: get SIGTERM when the runner dies (so even `kill -9` of the runner leaves no agent)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Runner:
    """Starts every agent of the launch plan, watches them, stops them in order; its exit code is the job's."""

    def __init__(self, record: RunRecord, view=None):
        self.record = record
        self.target_dir, self.run_dir = Path(record.target_dir), Path(record.run_dir)
        self.launch, self.plan = read_launch(self.target_dir), read_plan(self.target_dir)
        self.view = view
        self.agents: dict[str, subprocess.Popen] = {}
        self.ended: list[Ended] = []  # ended on their own (before any stop)
        self.codes: dict[str, int] = {}
        self.decision = Decision(False, None, "")
        self.stop_signal: int | None = None
        self.stages: list[list[str]] | None = None  # what is left to stop, in order, once stopping
        self.stage_since = 0.0
        self.grace = float(self.plan["runtime"]["grace_period"])

    def prepare(self) -> str:
        """A fresh run dir with a new per-run token (mode 600); returns the token file's path."""
        live = [r for r in _rows(self.run_dir) if r.get("status") in ("healthy", "starting", "hung")]
        if live:  # never wipe the state of processes that still run (a corrupt or stale record cannot cause it)
            raise OperatorError("run_dir_busy", f"{self.run_dir} still has live workers "
                                                f"({', '.join(str(r['role']) + '/' + str(r['index']) for r in live)})",
                                "conflict")
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        (self.run_dir / "agents").mkdir(parents=True)
        unpack_agent(self.target_dir, self.run_dir)
        token = self.run_dir / "token"
        fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_hex(32))
        return str(token)

    def start(self, token_file: str) -> None:
        cwd = self.record.workdir or None
        for proc in self.launch["processes"]:
            argv = [_fill(a, self.target_dir, self.run_dir) for a in proc["argv"]]
            if argv[0] == "python3" and Path(sys.executable).name.startswith("python3"):
                argv[0] = sys.executable
            inherited = {k: v for k, v in os.environ.items() if k not in CLUSTER_VARS}  # every node is here
            env = {**inherited, **proc["env"], "AREAL_AGENT_TOKEN_FILE": token_file}
            (self.run_dir / proc["log"]).parent.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / "agents" / f"{proc['role']}.{proc['index']}.log", "ab") as agent_log:
                self.agents[proc["name"]] = subprocess.Popen(
                    argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=agent_log, stderr=subprocess.STDOUT,
                    start_new_session=True, preexec_fn=_die_with_parent)
        self.record.job = {"runner_pid": os.getpid(), "runner_start": procs.started(os.getpid()),
                           "agents": {n: p.pid for n, p in self.agents.items()}}
        save(self.record)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop stage by stage (outcome.stop_stages): the driver, the other workers, the gate's worker last; a
        stage gets the grace period before the next one is told anyway; SIGKILL goes to everyone at once."""
        if self.stages is None:
            self.stages, self.stage_since = [list(s) for s in stop_stages(self.plan)], time.monotonic()
        if sig == signal.SIGKILL:
            targets = list(self.agents)
        else:
            while self.stages and (all(self.agents[n].poll() is not None for n in self.stages[0])
                                   or time.monotonic() - self.stage_since > self.grace + 2):
                self.stages.pop(0)
                self.stage_since = time.monotonic()
            targets = self.stages[0] if self.stages else []
        for name in targets:
            if self.agents[name].poll() is None:
                try:
                    os.kill(self.agents[name].pid, sig)
                except ProcessLookupError:
                    pass

    def _on_signal(self, signum, frame) -> None:
        self.stop_signal = signum

    def _collect(self, whole: bool) -> list[dict]:
        """Notice agents that ended (in the order they really ended, with their agents' words when they could
        not start their process); returns every process's state when WHOLE or an agent ended, else [] (a run's
        state files are hundreds: read at every poll they were most of the runner's work)."""
        ended = [name for name, proc in self.agents.items() if name not in self.codes and proc.poll() is not None]
        if not ended and not whole:
            return []
        rows = _rows(self.run_dir)
        by_name = {f"{r.get('role')}/{r.get('index')}": r for r in rows if r.get("kind") != "forked"}
        finished = {name: str(r.get("finished_at") or "~") for name, r in by_name.items()}
        for name in sorted(ended, key=lambda n: finished.get(n, "~")):
            code = exit_code(self.agents[name].returncode)
            self.codes[name] = code
            if self.stages is None:
                why = str(by_name.get(name, {}).get("error") or "")
                self.ended.append(Ended(name, code, finished.get(name, "~"), why))
            if self.view:
                self.view.exited(name, code, stopped=self.stages is not None)
        return rows

    def _note(self, **facts) -> None:
        """Add FACTS to the record's job (what `status` and `ps` read while the runner works)."""
        try:
            record = load(self.record.name)
        except OperatorError:
            return  # a record made unreadable under the runner: it is kept as it is for inspection
        record.job.update(facts)
        save(record)

    def watch(self) -> None:
        fail_fast = bool(self.launch["fail_fast"])
        planned = len(process_names(self.plan))
        since, running = None, False
        while len(self.codes) < len(self.agents):
            rows = self._collect(whole=not running)
            if self.stages is None:
                self.decision = decide(self.plan, self.ended, len(self.agents) - len(self.codes), fail_fast)
                if self.decision.stop or self.stop_signal is not None:
                    since = time.monotonic()
                    self._note(stopping=self.decision.reason if self.decision.stop else _stopped_by(self.stop_signal))
                    if self.view:
                        self.view.say(f"areal: {self.decision.reason if self.decision.stop else 'stopping'}")
                elif not running and len(rows) >= planned and all(r.get("status") != "starting" for r in rows):
                    running = True  # every process has started (ready, or ended already): from now on `running`
                    self._note(running_since=now_iso())
            if self.stages is not None or since is not None:
                stuck = time.monotonic() - since > (self.grace + 2) * 3 + 5
                self.stop(signal.SIGKILL if stuck else signal.SIGTERM)
            if self.view:
                self.view.tick()
            time.sleep(POLL)

    def execute(self) -> int:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            self.start(self.prepare())
            if self.view:
                self.view.started(self.agents, process_names(self.plan))
            self.watch()
        finally:
            for name, proc in self.agents.items():  # whatever happened above: nothing outlives the runner
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGTERM)
            for s, handler in previous.items():
                signal.signal(s, handler)
        return self.finish()

    def finish(self) -> int:
        if self.decision.exit_code is None and self.stop_signal is None:
            self.decision = decide(self.plan, self.ended, 0, True)
        outcome, code = exit_code_of(self.decision, self.stop_signal)
        reason = _stopped_by(self.stop_signal) if outcome == RunState.STOPPED.value else self.decision.reason
        self.record = load(self.record.name)
        self.record.outcome, self.record.exit_code = outcome, code
        self.record.job = {**self.record.job, "exit_codes": self.codes, "reason": reason}
        save(self.record)
        if self.view:
            self.view.finished(outcome, code, reason)
        return code


def _stopped_by(signum: int | None) -> str:
    return f"stopped by {signal.Signals(signum).name}" if signum else "stopped"


def _rows(run_dir: Path) -> list[dict]:
    try:
        return read_run(str(run_dir))
    except OSError:
        return []


class Backend(RunBackend):
    target = "local"

    def submit(self, folder: Path, record: RunRecord, dry_run: bool = False, address: str | None = None) -> dict:
        """Start the runner detached (what `areal start` does); dry_run only checks the folder. The runner starts
        nothing before its pid is on record (it waits for its stdin to close), so whatever comes next (a start
        that times out, `areal stop`) finds it and everything it starts."""
        read_launch(folder)
        if dry_run:
            return {"accepted": True, "verdict": "the local target runs on this machine"}
        say_shared_devices(folder)
        record.run_dir = str(machine_run_dir(record.name))
        save(record)  # the runner reads it; from here on the runner writes the record
        log = Path(record.run_dir).parent / "runner.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as fh:
            runner = subprocess.Popen([sys.executable, "-m", "areal_compiler.runs.local", record.name],
                                      stdin=subprocess.PIPE, stdout=fh, stderr=subprocess.STDOUT,
                                      start_new_session=True, cwd=record.workdir or None)
        record.job = {"runner_pid": runner.pid, "runner_start": procs.started(runner.pid)}
        try:
            save(record)
        except BaseException:
            runner.kill()  # it has started nothing yet: it must not start under a record that does not name it
            raise
        finally:
            runner.stdin.close()
        return {"runner_pid": runner.pid, "runner_log": str(log)}

    def run(self, record: RunRecord, stream_logs: bool) -> int:
        from areal_compiler.runs.view import RunView

        record.run_dir = str(machine_run_dir(record.name))
        save(record)
        say_shared_devices(Path(record.target_dir))
        return Runner(record, RunView(record.name, Path(record.run_dir), stream_logs)).execute()

    def wait_ready(self, record: RunRecord, timeout: float) -> list[dict]:
        """Until every worker and fork is ready (healthy, or completed already); a process that fails or a run
        that ends first, or the timeout, stops the run and raises OperatorError with the cause and its log."""
        expected = sum(1 + len(p["forks"]) for p in read_launch(Path(record.target_dir))["processes"])
        deadline, rows = time.monotonic() + timeout, []
        while True:
            record = load(record.name)
            rows = _rows(Path(record.run_dir)) if record.job.get("agents") else []
            bad = [r for r in rows if r["status"] in ("failed", "crashed", "stopped", "corrupt")]
            if len(rows) == expected and all(r["status"] in ("healthy", "completed") for r in rows):
                return rows
            if bad or record.outcome or time.monotonic() > deadline:
                break
            time.sleep(POLL)
        for _ in range(int(DECIDE / POLL)):  # a failure the runner ends the job for is the job's (failed, its code)
            if not bad or record.outcome or record.job.get("stopping"):
                break
            time.sleep(POLL)
            record = load(record.name)
        problem = _start_problem(record, rows, bad, timeout)
        said = self.stop(load(record.name), force=True)
        final = load(record.name)
        if said.startswith("still"):
            end = said
        elif final.outcome == RunState.STOPPED.value:
            end = "the run was stopped"
        else:
            end = f"the run {final.outcome} (exit code {final.exit_code})"
        raise OperatorError("start_failed", f"{record.name}: {problem}; {end}", "run")

    def state(self, record: RunRecord) -> RunState:
        """`starting` until every process has started once (ready, or ended already), then `running` until the
        runner records the outcome: a run that lost a worker is running (degraded) or ending, never starting."""
        if record.outcome:
            return RunState(record.outcome)
        if procs.runner(record.job):
            return RunState.RUNNING if record.job.get("running_since") else RunState.STARTING
        if record.job.get("runner_pid"):
            return RunState.CRASHED
        return RunState.STARTING  # claimed, the runner not up yet

    def details(self, record: RunRecord) -> dict:
        """How the run ended, what it is ending for, or which processes a running run has lost."""
        job = record.job
        if record.outcome:
            facts = {"reason": job.get("reason")}
        elif job.get("stopping"):
            facts = {"ending": job["stopping"]}
        elif job.get("running_since") and procs.runner(job):
            lost = [f"{r['role']}/{r['index']} {r['status']}" for r in self.workers(record)
                    if r.get("status") in ("crashed", "failed", "hung", "corrupt")]
            facts = {"degraded": ", ".join(lost)}
        else:
            facts = {}
        facts = {k: v for k, v in facts.items() if isinstance(v, str) and v}
        return {"local": facts} if facts else {}

    def stop(self, record: RunRecord, force: bool) -> str:
        """SIGTERM the runner (it stops the agents in order); --force kills what is left after the wait."""
        runner, agents = procs.runner(record.job), procs.agents(record.job)
        if not runner and not agents:
            return ended_words(record, self.state(record))
        left = procs.terminate(runner, agents, _grace(Path(record.target_dir) / "plan.json"), force)
        if left:
            return _still(left, runner, record.name)
        fresh = load(record.name)
        if fresh.outcome is None:  # its runner was killed before it could record one
            fresh.outcome, fresh.job["reason"] = RunState.STOPPED.value, "stopped by `areal stop`"
            save(fresh)
        return "stopped"

    def stop_unrecorded(self, name: str, force: bool) -> str | None:
        """A run whose record cannot be read: stop what its run directory on this machine shows alive (the
        agents' own state files name their pids; their parent is the runner)."""
        run_dir = machine_run_dir(name)
        runner, agents = procs.found_in(_rows(run_dir), run_dir)
        if not runner and not agents:
            return None
        left = procs.terminate(runner, agents, _grace(procs.plan_of(agents[0]) if agents else None), force)
        if left:
            return _still(left, runner, name)
        return f"stopped what {run_dir} showed alive: " + ", ".join(
            ([f"the runner (pid {runner})"] if runner else []) + [f"{len(agents)} agent(s)"] * bool(agents))


DECIDE = 2.0  # seconds a start that saw a process fail gives the runner to decide the job's outcome


def _grace(plan_path: Path | None) -> float:
    try:
        return float(json.loads(plan_path.read_text(encoding="utf-8"))["runtime"]["grace_period"])
    except (AttributeError, OSError, ValueError, KeyError, TypeError):
        return 10.0  # the format's default


def _still(left: list[int], runner: int | None, name: str) -> str:
    what = ", ".join(([f"the runner (pid {runner})"] if runner in left else [])
                     + [f"{len([p for p in left if p != runner])} agent(s)"] * any(p != runner for p in left))
    return f"still stopping ({what} still run); `areal stop --force {name}` kills what is left"


def _last_lines(path: Path, count: int = 5) -> list[str]:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - 8192))
            return fh.read().decode("utf-8", "replace").splitlines()[-count:]
    except OSError:
        return []


def _start_problem(record: RunRecord, rows: list[dict], bad: list[dict], timeout: float) -> str:
    """Why a start failed, in words: the failed process, its exit code, and the last lines of its own log and
    of its agent's log (where set-up errors such as a busy port or a bad secret are)."""
    if not bad:
        waiting = [f"{r['role']}/{r['index']} {r['status']}" for r in rows if r["status"] != "healthy"]
        what = f"not every worker was ready after {timeout:g}s" if not record.outcome else \
            f"the run ended ({record.outcome}, exit code {record.exit_code}) before every worker was ready"
        return what + (f" ({', '.join(waiting)})" if waiting else "")
    first = min(bad, key=lambda r: (r["status"] == "stopped", str(r.get("finished_at") or "")))  # the cause first
    name, error = f"{first['role']}/{first['index']}", first.get("error")
    run_dir = Path(record.run_dir)
    lines = _last_lines(run_dir / "logs" / str(first["role"]) / f"{first['index']}.log")
    lines += [f"agent: {line}" for line in _last_lines(run_dir / "agents" / f"{first['role']}.{first['index']}.log")
              if not error or error not in line]
    shown = "".join(f"\n  | {line}" for line in lines)
    if error:  # its agent could not start it: the agent's own words
        return f"{name} could not start: {error} (exit code {first.get('exit_code')}){shown}"
    return f"{name} {first['status']} with exit code {first.get('exit_code')} during start-up{shown}"


def main(argv: list[str]) -> int:
    """`python -m areal_compiler.runs.local RUN_NAME`: the detached runner that `areal start` spawns. It starts
    once `start` has recorded its pid and closed its stdin."""
    sys.stdin.buffer.read()
    return Runner(load(argv[0])).execute()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
