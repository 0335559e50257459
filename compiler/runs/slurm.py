"""Submitting a compiled Slurm folder and following the job: sbatch, scontrol/sacct, scancel, log paths.

Called by the operator verbs (`areal submit/status/logs/stop --target slurm`). Every Slurm command runs with the
caller's environment (SLURM_CONF etc.) unless `env` is given; failures raise SlurmError carrying Slurm's own message."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from areal_compiler.runs.base import OperatorError, RunBackend, RunState, ended_words
from areal_compiler.runs.paths import job_parent

#: Job states after which a job does not change any more.
TERMINAL_STATES = frozenset({"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
                             "OUT_OF_MEMORY", "PREEMPTED", "REVOKED", "SPECIAL_EXIT", "TIMEOUT"})
#: Terminal Slurm state -> the run's outcome.
OUTCOMES = {"COMPLETED": "succeeded", "CANCELLED": "stopped", "FAILED": "failed", "OUT_OF_MEMORY": "failed",
            "TIMEOUT": "failed", "DEADLINE": "failed", "PREEMPTED": "stopped", "REVOKED": "stopped",
            "SPECIAL_EXIT": "failed", "NODE_FAIL": "crashed", "BOOT_FAIL": "crashed"}
#: Slurm's non-terminal states -> RunState (anything else is running).
LIVE = {"PENDING": RunState.PENDING, "REQUEUED": RunState.PENDING, "REQUEUE_HOLD": RunState.PENDING,
        "REQUEUE_FED": RunState.PENDING, "RESV_DEL_HOLD": RunState.PENDING, "CONFIGURING": RunState.STARTING,
        "SUSPENDED": RunState.PENDING, "STOPPED": RunState.PENDING}
_FIELD = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/]*)=(.*?)(?=\s+[A-Za-z][A-Za-z0-9_:/]*=|$)")


class SlurmError(OperatorError):
    def __init__(self, code: str, message: str, retryable: bool = False):
        super().__init__(code, message, "unavailable" if retryable else "run", retryable)


def _run(argv: list[str], env: dict | None = None, cwd: str | os.PathLike | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess:
    if shutil.which(argv[0], path=(env or os.environ).get("PATH")) is None:
        raise SlurmError("slurm_not_found", f"{argv[0]} is not on PATH: run this on a Slurm login node "
                                            "(or put the Slurm client commands on PATH)")
    try:  # whatever bytes Slurm prints are read (undecodable ones replaced), never a crash
        return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, errors="replace",
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise SlurmError("slurm_timeout", f"{argv[0]} did not answer within {timeout:g} s "
                                          "(is slurmctld reachable?)", retryable=True) from None


def _slurm_message(proc: subprocess.CompletedProcess) -> str:
    text = (proc.stderr or "").strip() or (proc.stdout or "").strip()
    return text or f"exit code {proc.returncode} and no message"


def _plan(target_dir: Path) -> dict:
    try:
        return json.loads((target_dir / "plan.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SlurmError("target_incomplete", f"{target_dir} has no readable plan.json ({exc}): "
                                              "compile with `areal compile --target slurm`") from None


def run_parent(target_dir: Path) -> Path:
    """<fileroot>/<experiment>/<trial>: holds slurm-<job>.out/.err and one run dir per job (<job id>/)."""
    plan = _plan(Path(target_dir))
    return Path(job_parent(plan["fileroot"], plan["experiment_name"], plan["trial_name"]))


def check_capacity(plan: dict, env: dict | None = None) -> None:
    """Refuse a job that needs more nodes in total than its partitions have: sbatch (and --test-only) judge each
    heterogeneous-job component alone, so such a job is accepted and then pends forever."""
    job = plan["targets"]["slurm"]
    needed: dict[str, set] = {}
    largest: dict[str, int] = {}
    for role in plan["roles"].values():
        if role["colocated_with"] is None and role["workers"]:
            partition = role["slurm"].get("partition") or job.get("partition") or ""
            needed.setdefault(partition, set()).update(role["nodes"])
            largest[partition] = max(largest.get(partition, 0), len(role["nodes"]))
    for partition, nodes in sorted(needed.items()):
        proc = _run(["sinfo", "-h", "-N", "-o", "%N"] + (["-p", partition] if partition else []), env=env)
        if proc.returncode != 0:
            raise SlurmError("sinfo_failed", f"sinfo could not list partition {partition or '(default)'}: "
                                             f"{_slurm_message(proc)}")
        have = len(set(proc.stdout.split()))
        if len(nodes) > have >= largest[partition]:  # a role too big alone: sbatch says so in its own words
            raise SlurmError("exceeds_cluster", f"the job needs {len(nodes)} node(s) in partition "
                                                f"{partition or '(default)'} but it has {have}: it would pend "
                                                "forever; use fewer accelerators or another partition")


def submit(target_dir: Path, test_only: bool = False, env: dict | None = None,
           cwd: str | os.PathLike | None = None) -> dict:
    """`sbatch --parsable <target>/job.sbatch` (or `sbatch --test-only`), run in `cwd` (default: the caller's
    directory), which becomes the workers' working directory (relative paths in role commands resolve there,
    as with `areal run`).

    The job finds its folder through AREAL_TARGET_DIR (exported here; sbatch passes the environment on) and
    writes into <fileroot>/<experiment>/<trial>/, which is created first (Slurm does not create --output dirs).
    Returns {"job_id", "cluster", "run_dir", "batch_logs"}; with test_only {"accepted": True, "verdict"}.
    Raises SlurmError with Slurm's own message when sbatch refuses."""
    target_dir = Path(target_dir).resolve()
    script = target_dir / "job.sbatch"
    for needed in (script, target_dir / "plan.json", target_dir / "agent.pyz"):
        if not needed.is_file():
            raise SlurmError("target_incomplete", f"{needed} is missing: compile with `areal compile --target slurm`")
    parent = run_parent(target_dir)
    environ = dict(os.environ if env is None else env, AREAL_TARGET_DIR=str(target_dir))
    check_capacity(_plan(target_dir), environ)
    if test_only:
        proc = _run(["sbatch", "--test-only", str(script)], env=environ, cwd=cwd)
        verdict = _slurm_message(proc)
        if proc.returncode != 0:
            raise SlurmError("sbatch_rejected", f"sbatch --test-only rejected {script}: {verdict}")
        return {"accepted": True, "verdict": verdict}
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SlurmError("fileroot_unwritable", f"cannot create {parent} (the plan's fileroot must be a shared "
                                                f"directory this user can write): {exc}") from None
    proc = _run(["sbatch", "--parsable", str(script)], env=environ, cwd=cwd)
    if proc.returncode != 0:
        raise SlurmError("sbatch_rejected", f"sbatch rejected {script}: {_slurm_message(proc)}")
    job_id, _, cluster = proc.stdout.strip().partition(";")
    if not job_id.isdigit():
        raise SlurmError("sbatch_output", f"sbatch --parsable printed {proc.stdout.strip()!r}, not a job id")
    return {"job_id": job_id, "cluster": cluster or None, "run_dir": str(parent / job_id),
            "batch_logs": [str(parent / f"slurm-{job_id}.out"), str(parent / f"slurm-{job_id}.err")]}


def _parse_record(line: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in _FIELD.finditer(line)}


def _exit(text: str) -> tuple[int | None, int | None]:
    code, _, sig = (text or "").partition(":")
    return (int(code) if code.isdigit() else None), (int(sig) if sig.isdigit() else None)


def _components_from_scontrol(job_id: str, env: dict | None) -> list[dict] | None:
    proc = _run(["scontrol", "-o", "show", "job", str(job_id)], env=env)
    if proc.returncode != 0:
        if "Invalid job id" in _slurm_message(proc):
            return None
        raise SlurmError("scontrol_failed", f"scontrol show job {job_id}: {_slurm_message(proc)}", retryable=True)
    out = []
    for line in proc.stdout.splitlines():
        if not line.strip():
            continue
        rec = _parse_record(line)
        code, sig = _exit(rec.get("ExitCode", ""))
        offset, restarts = rec.get("HetJobOffset") or "0", rec.get("Restarts") or "0"
        if not (rec.get("JobId") and rec.get("JobState") and offset.isdigit() and restarts.isdigit()):
            raise SlurmError("scontrol_output", f"scontrol -o show job {job_id} printed a line that is not a job "
                                                f"record (JobId, JobState, numeric HetJobOffset and Restarts): "
                                                f"{line[:200]!r}")
        out.append({"job_id": rec["JobId"], "offset": int(offset), "name": rec.get("JobName"),
                    "state": rec["JobState"], "exit_code": code, "signal": sig, "reason": rec.get("Reason"),
                    "nodes": rec.get("NodeList"), "restarts": int(restarts)})
    return sorted(out, key=lambda c: c["offset"])


def _components_from_sacct(job_id: str, env: dict | None) -> list[dict] | None:
    if shutil.which("sacct", path=(env or os.environ).get("PATH")) is None:
        return None
    proc = _run(["sacct", "-n", "-P", "-X", "-j", str(job_id), "-o", "JobID,JobName,State,ExitCode,NodeList"],
                env=env)
    if proc.returncode != 0:
        return None
    out = []
    for line in proc.stdout.splitlines():
        parts = line.split("|")
        if len(parts) < 5:
            continue
        jid, name, state, exit_text, nodes = parts[:5]
        offset = int(jid.split("+", 1)[1]) if "+" in jid and jid.split("+", 1)[1].isdigit() else 0
        code, sig = _exit(exit_text)
        out.append({"job_id": jid, "offset": offset, "name": name, "state": state.split()[0] if state else None,
                    "exit_code": code, "signal": sig, "reason": None, "nodes": nodes, "restarts": None})
    return sorted(out, key=lambda c: c["offset"]) or None


def status(job_id: str, env: dict | None = None) -> dict:
    """The job's state from `scontrol show job` (every het component), falling back to sacct once slurmctld has
    forgotten the job. The job's state and exit code are the leader's (component 0), where the batch script runs:
    the script exits with the first failing step's code. `outcome` is set once the job is terminal."""
    components = _components_from_scontrol(job_id, env)
    source = "scontrol"
    if components is None:
        components, source = _components_from_sacct(job_id, env), "sacct"
    if not components:
        raise SlurmError("job_not_found", f"Slurm knows no job {job_id} (scontrol: Invalid job id; "
                                          "sacct: no record or accounting disabled)")
    leader = components[0]
    states = {c["state"] for c in components}
    terminal = all(s in TERMINAL_STATES for s in states)
    return {"job_id": str(job_id), "state": leader["state"], "exit_code": leader["exit_code"],
            "signal": leader["signal"], "terminal": terminal,
            "outcome": OUTCOMES.get(leader["state"]) if terminal else None,
            "components": components, "source": source}


def stop(job_id: str, env: dict | None = None) -> dict:
    """`scancel <job>`: Slurm signals every step (srun forwards to the agents, which stop their workers within
    runtime.grace_period) and kills what is left after its KillWait. A het job is cancelled as a whole."""
    proc = _run(["scancel", str(job_id)], env=env)
    if proc.returncode != 0:
        raise SlurmError("scancel_failed", f"scancel {job_id}: {_slurm_message(proc)}")
    return {"job_id": str(job_id), "cancel_requested": True}


def log_paths(run_dir: Path) -> dict:
    """The logs of one run: the batch script's (beside the run dir, named by job id) and one per worker and
    forked child (<run dir>/logs/<role>/<index>.log), each only if it exists."""
    run_dir = Path(run_dir)
    job_id = run_dir.name
    batch = [run_dir.parent / f"slurm-{job_id}.{ext}" for ext in ("out", "err")]
    workers = {}
    logs = run_dir / "logs"
    if logs.is_dir():
        def order(p: Path) -> tuple:
            return (p.parent.name, 0, int(p.stem), "") if p.stem.isdigit() else (p.parent.name, 1, 0, p.stem)
        for path in sorted(logs.glob("*/*.log"), key=order):
            workers[f"{path.parent.name}/{path.stem}"] = str(path)
    return {"run_dir": str(run_dir), "batch": [str(p) for p in batch if p.is_file()], "workers": workers}


class Backend(RunBackend):
    """Slurm runs: sbatch, scontrol/sacct, scancel; the workers' state and logs on the shared fileroot."""

    target = "slurm"
    scheduler_logs = ("batch/out", "batch/err")

    def submit(self, folder: Path, record, dry_run: bool = False, address: str | None = None) -> dict:
        if dry_run:
            return submit(folder, test_only=True, cwd=record.workdir or None)
        job = submit(folder, cwd=record.workdir or None)
        record.run_dir = job["run_dir"]
        record.job = {"slurm_job_id": job["job_id"], "batch_logs": job["batch_logs"]}
        from areal_compiler.runs.registry import save

        save(record)
        return job

    def state(self, record) -> RunState:
        """The outcome once the job ended (recorded the first time it is seen); else Slurm's live state;
        `unknown` when Slurm cannot be asked (never a guess that it ended)."""
        if record.outcome:
            return RunState(record.outcome)
        job_id = record.job.get("slurm_job_id")
        if not job_id:
            return RunState.CRASHED  # claimed, but the submission never completed
        try:
            job = status(job_id)
        except SlurmError:
            return RunState.UNKNOWN
        if job["terminal"]:
            from areal_compiler.runs.registry import save

            record.outcome, record.exit_code = job["outcome"] or "failed", job["exit_code"]
            save(record)
            return RunState(record.outcome)
        return LIVE.get(job["state"], RunState.RUNNING)

    def details(self, record) -> dict:
        job_id = record.job.get("slurm_job_id")
        if not job_id:
            return {}
        try:
            return {"slurm": status(job_id)}
        except SlurmError as exc:
            return {"slurm": {"job_id": job_id, "error": exc.message}}

    def stop(self, record, force: bool) -> str:
        """scancel: Slurm signals every step (the agents stop their workers within the grace period) and sends
        SIGKILL after the cluster's KillWait; so `force` adds nothing here."""
        state = self.state(record)
        if state.terminal:
            return ended_words(record, state)
        stop(record.job["slurm_job_id"])
        return f"cancel requested for Slurm job {record.job['slurm_job_id']}"

    def log_files(self, record) -> dict[str, Path]:
        """Every worker's and forked child's log, and the batch script's own (`batch/out`, `batch/err`)."""
        if not record.run_dir:
            return {}
        found = log_paths(Path(record.run_dir))
        files = {name: Path(path) for name, path in found["workers"].items()}
        files.update({f"batch/{Path(path).suffix.lstrip('.')}": Path(path) for path in found["batch"]})
        return files
