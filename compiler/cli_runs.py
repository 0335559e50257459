"""The operator verbs: `areal run`, `start`, `stop`, `ps`, `status`, `logs` (shared by every target).

Registered on the `areal` group by cli.py; each verb dispatches on the run record's target."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from areal_compiler.report import OUTPUT, emit_error, emit_json


def _fail(exc, output: str) -> None:
    emit_error(getattr(exc, "code", "error"), getattr(exc, "kind", "invalid"), getattr(exc, "message", str(exc)),
               getattr(exc, "retryable", False), output == "json")
    sys.exit(1)


def _prepare_local(source: str, output: str):
    """A claimed run record for SOURCE (an experiment YAML, or a compiled local target folder)."""
    from areal_compiler.output import write_tree
    from areal_compiler.pipeline import compile_file
    from areal_compiler.report import exit_on_diagnostics
    from areal_compiler.runs import local
    from areal_compiler.runs.registry import RunRecord, claim, discard

    path = Path(source)
    if path.is_dir():
        target = path / "local" if (path / "local" / "launch.json").is_file() else path
        launch = local.read_launch(target)
        name = launch["run_name"]
        record = RunRecord(name, "local", str(target.resolve()), str(local.run_paths(name)[1]))
        claim(record, local.is_active)
        return record
    result = compile_file(source, ("local",))
    exit_on_diagnostics([result], output)
    name = f"{result.plan.experiment_name}/{result.plan.trial_name}"
    target, run_dir = local.run_paths(name)
    record = RunRecord(name, "local", str(target), str(run_dir))
    claim(record, local.is_active)
    try:
        write_tree(target, {rel.removeprefix("local/"): a for rel, a in result.artifacts.items()})
    except BaseException:
        discard(record)
        raise
    return record


RUN_ERRORS = (ValueError, OSError)  # bad folders and files; callers add RegistryError and OutputError


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=str))
@click.option("--quiet", is_flag=True, help="Do not stream worker logs (they are always written to files).")
def run(source: str, quiet: bool) -> None:
    """Run SOURCE on this machine in the foreground and exit with the job's exit code.

    SOURCE is an experiment YAML (compiled first) or a compiled local target folder. One agent per worker;
    when a worker fails the others are stopped (local.fail_fast); Ctrl-C stops everything in order."""
    from areal_compiler.runs.local import Runner
    from areal_compiler.runs.registry import RegistryError
    from areal_compiler.runs.view import RunView

    from areal_compiler.output import OutputError

    try:
        record = _prepare_local(source, "text")
    except (RegistryError, OutputError, *RUN_ERRORS) as exc:
        _fail(exc, "text")
    sys.exit(Runner(record, RunView(record.name, Path(record.run_dir), stream_logs=not quiet)).execute())


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=str))
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for every worker to be healthy.")
@OUTPUT
def start(source: str, timeout: float, output: str) -> None:
    """Start SOURCE in the background; print the run name once every worker is healthy."""
    import subprocess

    from areal_compiler.runs import local
    from areal_compiler.runs.registry import RegistryError, load

    from areal_compiler.output import OutputError
    from areal_compiler.runs.registry import discard

    try:
        record = _prepare_local(source, output)
    except (RegistryError, OutputError, *RUN_ERRORS) as exc:
        _fail(exc, output)
    log = Path(record.run_dir).parent / "runner.log"
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        discard(record)
        _fail(exc, output)
    with open(log, "ab") as fh:
        runner = subprocess.Popen([sys.executable, "-m", "areal_compiler.runs.local", record.name],
                                  stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    expected = sum(1 + len(p["forks"]) for p in local.read_launch(Path(record.target_dir))["processes"])
    deadline, rows, problem = time.monotonic() + timeout, [], None
    while time.monotonic() < deadline:
        rows = _worker_rows(record) if load(record.name).job.get("runner_pid") else []
        bad = [r for r in rows if r["status"] not in ("healthy", "completed")]
        if runner.poll() is not None and (bad or len(rows) < expected):
            problem = f"the run ended before every worker was healthy (exit code {runner.returncode})"
            break
        if len(rows) == expected and not bad:
            break
        time.sleep(0.2)
    else:
        problem = f"not every worker was healthy after {timeout:g}s"
    if problem:
        detail = ", ".join(f"{r['role']}/{r['index']} {r['status']}" for r in rows)
        stopped = local.stop(load(record.name), force=True) if runner.poll() is None else ""
        emit_error("start_failed", "run", f"{record.name}: {problem}" + (f" ({detail})" if detail else "")
                   + ("; the run was stopped" if stopped else "")
                   + f"; see `areal logs {record.name}` and {log}", False, output == "json")
        sys.exit(1)
    if output == "json":
        emit_json({"run": record.name, "target": "local", "workers": rows})
    else:
        click.echo(record.name)


def _worker_rows(record) -> list[dict]:
    from areal_compiler.agent.state import read_run

    try:
        return read_run(record.run_dir)
    except OSError:
        return []


class _Backend:
    """The per-target operations behind ps/status/stop, looked up by the run record's target."""

    def __init__(self, status, stop):
        self.status, self.stop = status, stop


def _backend(record) -> _Backend:
    if record.target == "slurm":
        from areal_compiler.runs import slurm

        return _Backend(slurm.run_status, slurm.stop_run)
    from areal_compiler.runs import local

    return _Backend(local.status, local.stop)


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=str))
@click.option("--target", type=click.Choice(["slurm"]), default="slurm", show_default=True,
              help="Where to submit (Kubernetes and Ray are coming).")
@click.option("--test-only", is_flag=True, help="Let the real scheduler judge the request without running it.")
@OUTPUT
def submit(source: str, target: str, test_only: bool, output: str) -> None:
    """Submit SOURCE (an experiment YAML, or a compiled `slurm/` folder) to Slurm and record the job.

    Runs `sbatch --parsable` from the current directory (the workers' working directory); `--test-only` prints
    Slurm's verdict (`sbatch --test-only`) and records nothing."""
    from areal_compiler.output import OutputError, write_tree
    from areal_compiler.pipeline import compile_file
    from areal_compiler.report import exit_on_diagnostics
    from areal_compiler.runs import slurm
    from areal_compiler.runs.registry import RegistryError, RunRecord, areal_home, claim, discard, save

    path = Path(source)
    try:
        if path.is_dir():
            folder = path / "slurm" if (path / "slurm" / "job.sbatch").is_file() else path
            try:
                plan = json.loads((folder / "plan.json").read_text(encoding="utf-8"))
                name = f"{plan['experiment_name']}/{plan['trial_name']}"
            except (OSError, ValueError, KeyError, TypeError):
                raise ValueError(f"{path} is not a compiled Slurm folder (no usable plan.json)") from None
        else:
            result = compile_file(source, ("slurm",))
            exit_on_diagnostics([result], output)
            name = f"{result.plan.experiment_name}/{result.plan.trial_name}"
            folder = areal_home() / "runs" / result.plan.experiment_name / result.plan.trial_name / "slurm"
            write_tree(folder, {r.removeprefix("slurm/"): a for r, a in result.artifacts.items()})
        if test_only:
            verdict = slurm.submit(folder, test_only=True)
            emit_json({"run": name, **verdict}) if output == "json" else click.echo(verdict["verdict"])
            return
        record = RunRecord(name, "slurm", str(folder.resolve()), "")
        claim(record, slurm.is_active)
        try:
            job = slurm.submit(folder)
        except BaseException:
            discard(record)  # nothing was submitted: the name stays free
            raise
    except (RegistryError, OutputError, slurm.SlurmError, *RUN_ERRORS) as exc:
        _fail(exc, output)
    record.run_dir, record.job = job["run_dir"], {"slurm_job_id": job["job_id"], "batch_logs": job["batch_logs"]}
    save(record)
    if output == "json":
        emit_json({"run": name, "target": "slurm", **job})
    else:
        click.echo(f"{name}: submitted Slurm job {job['job_id']} (run dir {job['run_dir']})")


@click.command()
@click.argument("name", metavar="RUN")
@click.option("--force", is_flag=True,
              help="Local runs: SIGKILL what is still alive after the grace period (on Slurm, scancel always "
                   "ends with SIGKILL after the cluster's KillWait).")
@OUTPUT
def stop(name: str, force: bool, output: str) -> None:
    """Stop RUN (experiment/trial): SIGTERM, the grace period, then SIGKILL with --force."""
    from areal_compiler.runs.registry import RegistryError, load

    try:
        record = load(name)
    except RegistryError as exc:
        _fail(exc, output)
    from areal_compiler.runs.slurm import SlurmError

    try:
        result = _backend(record).stop(record, force)
    except SlurmError as exc:
        _fail(exc, output)
    if output == "json":
        emit_json({"run": name, "result": result})
    else:
        click.echo(f"{name}: {result}")
    sys.exit(1 if result.startswith("still") else 0)


def _age(iso: str) -> str:
    from datetime import datetime

    seconds = int(time.time() - datetime.fromisoformat(iso).timestamp())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@click.command()
@click.option("-a", "--all", "show_all", is_flag=True, help="Include runs that have ended.")
@OUTPUT
def ps(show_all: bool, output: str) -> None:
    """List runs with their target, status and age."""
    from areal_compiler.runs.registry import all_records

    rows = []
    for record in all_records():
        status = _backend(record).status(record)
        if show_all or status in ("running", "starting"):
            rows.append({"run": record.name, "target": record.target, "status": status,
                         "created_at": record.created_at, "exit_code": record.exit_code})
    if output == "json":
        emit_json({"runs": rows})
        return
    click.echo(f"{'RUN':<40} {'TARGET':<8} {'STATUS':<10} {'EXIT':>4}  AGE")
    for r in rows:
        exit_code = "-" if r["exit_code"] is None else r["exit_code"]
        click.echo(f"{r['run']:<40} {r['target']:<8} {r['status']:<10} {exit_code:>4}  {_age(r['created_at'])}")


@click.command()
@click.argument("name", metavar="RUN")
@OUTPUT
def status(name: str, output: str) -> None:
    """Per-worker health of RUN: healthy, hung, crashed, completed, failed or stopped."""
    from areal_compiler.runs.registry import RegistryError, load

    try:
        record = load(name)
    except RegistryError as exc:
        _fail(exc, output)
    rows = _worker_rows(record)
    run_status = _backend(record).status(record)
    job = {}
    if record.target == "slurm":
        from areal_compiler.runs import slurm

        try:
            job = slurm.status(record.job["slurm_job_id"]) if record.job.get("slurm_job_id") else {}
        except slurm.SlurmError as exc:
            job = {"error": exc.message}
    if output == "json":
        emit_json({"run": name, "target": record.target, "status": run_status, "exit_code": record.exit_code,
                   "workers": rows, **({"slurm": job} if job else {})})
        return
    click.echo(f"{name}  target {record.target}  {run_status}"
               + ("" if record.exit_code is None else f"  exit code {record.exit_code}")
               + (f"  Slurm job {job.get('job_id')} {job.get('state', job.get('error', ''))}" if job else ""))
    click.echo(f"{'WORKER':<28} {'STATUS':<10} {'HEARTBEAT':>9} {'EXIT':>5}  NOTE")
    for r in rows:
        beat = f"{r['heartbeat_age']:.1f}s" if r.get("heartbeat_age") is not None else "-"
        code = "-" if r.get("exit_code") is None else r["exit_code"]
        kind = " (forked)" if r.get("kind") == "forked" else ""
        click.echo(f"{str(r['role']) + '/' + str(r['index']) + kind:<28} {r['status']:<10} {beat:>9} {code:>5}  "
                   f"{r.get('message', '')}")


@click.command()
@click.argument("name", metavar="RUN")
@click.argument("worker", required=False, metavar="[ROLE[/INDEX]]")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the run ends.")
@click.option("--tail", type=click.IntRange(min=0), default=None, help="Only the last N lines of each log.")
def logs(name: str, worker: str | None, follow: bool, tail: int | None) -> None:
    """Print (or follow) the logs of RUN, every line prefixed by its worker."""
    from collections import deque

    from areal_compiler.runs.registry import RegistryError, load
    from areal_compiler.runs.view import LogTail

    try:
        record = load(name)
    except RegistryError as exc:
        _fail(exc, "text")
    folder = Path(record.run_dir) / "logs"
    files = [p for p in sorted(folder.glob("*/*.log"))
             if not worker or worker in (p.parent.name, f"{p.parent.name}/{p.stem}")]
    if not files:
        _fail(ValueError(f"no logs for {worker or 'any worker'} in {folder}"), "text")
    for path in files:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for line in deque(lines, maxlen=tail) if tail is not None else lines:
            click.echo(f"{path.parent.name}/{path.stem} | {line}" if len(files) > 1 or not worker else line)
    if follow:
        tailer = LogTail(folder, start_at_end=True, only=worker)
        while _backend(record).status(load(name)) in ("running", "starting"):
            for who, line in tailer.lines():
                click.echo(f"{who} | {line}")
            time.sleep(0.2)
        for who, line in tailer.lines():
            click.echo(f"{who} | {line}")


COMMANDS = (run, start, submit, stop, ps, status, logs)
