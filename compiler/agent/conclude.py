"""`agent.pyz conclude`: the end of a Slurm batch script: waits for its srun steps, decides the job's fate with
outcome.py, stops the steps in order, requeues a failed attempt when allowed, and exits with the job's code.

The batch script starts one step per role in the background (each in a wrapper that writes srun's exit code to
RUN_DIR/steps/<role>), runs this verb, and hands it the signals it gets through RUN_DIR/steps/.stop. Stopping a step is `scancel --signal=TERM <step>`: its agents stop their workers within the
plan's grace period (srun itself would kill its tasks at once)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional

from .outcome import Decision, Ended, decide, ended_from_states, exit_code_of, stop_stages
from .state import iso, read_run

POLL = 0.5


def _step_ids(job_id: str) -> Dict[str, List[str]]:
    """Running steps of this job by name (`<experiment>_<trial>:<role>`), from squeue."""
    try:
        out = subprocess.run(["squeue", "-h", "-s", "-j", job_id, "-o", "%i|%j"], capture_output=True,
                             text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    steps: Dict[str, List[str]] = {}
    for line in out.splitlines():
        step, _, name = line.strip().partition("|")
        steps.setdefault(name, []).append(step)
    return steps


class Conclusion:
    def __init__(self, plan: dict, run_dir: str, steps: Dict[str, int], job_id: str, grace: float) -> None:
        self.plan, self.run_dir, self.job_id, self.grace = plan, run_dir, job_id, grace
        self.steps = dict(steps)  # role -> srun pid
        self.codes: Dict[str, int] = {}  # role -> srun exit code
        self.names = {"%s/%s" % (w["role"], w["index"]) for w in plan["workers"]}
        self.stop_signal: Optional[int] = None
        self.frozen: Optional[List[Ended]] = None  # what had ended on its own when stopping began
        self.decision = Decision(False, None, "")

    def on_signal(self, signum: int, frame) -> None:
        self.stop_signal = signum

    def check_stop_file(self) -> None:
        """The batch script's TERM/INT trap writes the signal number to RUN_DIR/steps/.stop."""
        if self.stop_signal is not None:
            return
        try:
            with open(os.path.join(self.run_dir, "steps", ".stop"), encoding="utf-8") as handle:
                text = handle.read().strip()
        except OSError:
            return
        self.stop_signal = int(text) if text.isdigit() else signal.SIGTERM

    def reap(self) -> None:
        """A step has ended once its wrapper wrote the srun exit code to RUN_DIR/steps/<role> (the wrapper is
        this process's child after the script's exec, unless bash reaped it before: hence the file)."""
        for role, pid in self.steps.items():
            if role in self.codes:
                continue
            try:
                os.waitpid(pid, os.WNOHANG)  # reap the wrapper if it is ours and done
            except ChildProcessError:
                pass
            try:
                with open(os.path.join(self.run_dir, "steps", role), encoding="utf-8") as handle:
                    text = handle.read().strip()
            except OSError:
                continue
            if text.isdigit():
                self.codes[role] = int(text)

    def ended(self) -> List[Ended]:
        if self.frozen is not None:
            return self.frozen
        try:
            found = ended_from_states(read_run(self.run_dir), self.names)
        except OSError:
            found = []
        explained = {e.name.rpartition("/")[0] for e in found if e.code}
        for role, code in self.codes.items():  # a step that failed before (some of) its agents could say why
            if code and role not in explained:
                found.append(Ended("%s/0" % role, code, iso(time.time())))
        return found

    def stop(self) -> None:
        """Stop the steps stage by stage: the driver, the others, the gate's role last."""
        prefix = "%s_%s:" % (self.plan["experiment_name"], self.plan["trial_name"])
        if not _step_ids(self.job_id):  # squeue cannot tell the steps apart: every step at once
            subprocess.run(["scancel", "--signal=TERM", self.job_id], check=False)
            return
        for stage in stop_stages(self.plan):
            roles = sorted({name.rpartition("/")[0] for name in stage} & set(self.steps))
            ids = _step_ids(self.job_id)
            targets = [step for role in roles if role not in self.codes for step in ids.get(prefix + role, [])]
            if targets:
                subprocess.run(["scancel", "--signal=TERM"] + targets, check=False)
            deadline = time.monotonic() + self.grace + 5
            while time.monotonic() < deadline and any(r not in self.codes for r in roles):
                time.sleep(POLL)
                self.reap()
        if len(self.codes) < len(self.steps):  # whatever is left (a step whose id we could not find)
            subprocess.run(["scancel", "--signal=TERM", self.job_id], check=False)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        while len(self.codes) < len(self.steps):
            self.reap()
            self.check_stop_file()
            running = len(self.names) - len(self.ended())
            self.decision = decide(self.plan, self.ended(), running, fail_fast=True)
            if self.frozen is None and (self.decision.stop or self.stop_signal is not None):
                self.frozen = self.ended()
                why = self.decision.reason if self.decision.stop else "received signal %d" % self.stop_signal
                sys.stderr.write("areal: %s: stopping every step\n" % why)
                self.stop()
            time.sleep(POLL)
        self.reap()
        if self.frozen is None:
            self.decision = decide(self.plan, self.ended(), 0, fail_fast=True)
        outcome, code = exit_code_of(self.decision, self.stop_signal)
        if outcome == "stopped":
            sys.stderr.write("areal: job %s was stopped; exit code %d\n" % (self.job_id, code))
        else:
            sys.stderr.write("areal: job %s %s (%s); exit code %d\n" % (self.job_id, outcome, self.decision.reason,
                                                                        code))
        return code


def requeue_if_allowed(job_id: str, code: int, stopped: bool, max_retries: int, environ=None) -> None:
    environ = os.environ if environ is None else environ
    restarts = int(environ.get("SLURM_RESTART_COUNT") or 0)
    if code != 0 and not stopped and restarts < max_retries:
        sys.stderr.write("areal: attempt %d failed with exit code %d: requeueing (max_retries %d)\n"
                         % (restarts + 1, code, max_retries))
        subprocess.run(["scontrol", "requeue", job_id], check=False)


def conclude(plan: dict, run_dir: str, steps: Dict[str, int], job_id: str) -> int:
    runtime = plan.get("runtime") or {}
    conclusion = Conclusion(plan, run_dir, steps, job_id, float(runtime.get("grace_period", 10)))
    code = conclusion.run()
    max_retries = int((plan.get("targets") or {}).get("slurm", {}).get("max_retries", 0) or 0)
    requeue_if_allowed(job_id, code, conclusion.stop_signal is not None, max_retries)
    return code
