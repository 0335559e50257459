"""The operator verbs: `areal run`, `start`, `submit`, `stop`, `ps`, `status`, `logs`, for every target.

Registered on the `areal` group by cli.py. A verb resolves what the user named (an experiment file, a compiled
folder or a run name) to a target through the registry and calls that target's run backend; it never names a
target itself."""
from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import click

from areal_compiler.importers.options import IMPORT_OPTIONS
from areal_compiler.printing import OUTPUT, emit_error, emit_json
from areal_compiler.runs.base import OperatorError


def _fail(exc: Exception, output: str) -> None:
    emit_error(getattr(exc, "code", "error"), getattr(exc, "kind", "invalid"), getattr(exc, "message", str(exc)),
               getattr(exc, "retryable", False), output == "json")
    sys.exit(1)


def _record_for(source: str, target: str, output: str):
    """A new run record for SOURCE on TARGET, and the artifacts to write (None for a compiled folder).

    An experiment file is compiled for TARGET; its workers run in the file's directory (relative commands
    resolve there, wherever areal is called from). An imported upstream config, like a compiled folder (checked
    against its manifest), runs in the current directory: upstream's command lines (`--driver`, the training
    script's paths) are written relative to the AReaL checkout they are launched from."""
    import json

    from areal_compiler.runs.paths import compiled_dir
    from areal_compiler.runs.registry import RunRecord
    from areal_compiler.targets.common import verify_folder

    path = Path(source)
    if path.is_dir():
        folder = path / target if (path / target / "manifest.json").is_file() else path
        try:
            manifest = verify_folder(folder)
            plan = json.loads((folder / "plan.json").read_text(encoding="utf-8"))
            name = f"{plan['experiment_name']}/{plan['trial_name']}"
        except (ValueError, OSError, KeyError, TypeError) as exc:
            raise OperatorError("target_unusable", str(exc)) from None
        if manifest["target"] != target:
            raise OperatorError("wrong_target", f"{folder} was compiled for {manifest['target']}, not {target}")
        files, workdir = None, os.getcwd()
    else:
        from areal_compiler.pipeline import compile_file
        from areal_compiler.printing import exit_on_diagnostics

        result = compile_file(source, (target,))
        exit_on_diagnostics([result], output)
        name, folder = result.plan.name, compiled_dir(result.plan.name, target)
        files = {rel.split("/", 1)[1]: a for rel, a in result.artifacts.items()}
        from areal_compiler.importers.imported import ImportedSource

        workdir = os.getcwd() if isinstance(result.source, ImportedSource) else str(path.resolve().parent)
    return RunRecord(name, target, str(folder.resolve()), "", workdir), files


def _here() -> str:
    from areal_compiler.targets import this_machine

    return this_machine()


def _launch(source: str, target: str, output: str, dry_run: bool = False, address: str | None = None,
            foreground: bool = False):
    """Compile (or check) SOURCE, claim its run name, write the folder and start or submit it, all under the
    run name's lock; a failure puts the previous record back. Returns (record, what the backend said)."""
    from areal_compiler.writing import OutputError, write_tree
    from areal_compiler.runs.base import backend_for
    from areal_compiler.runs.registry import claim, locked, restore

    try:
        record, files = _record_for(source, target, output)
        backend = backend_for(target)
        with locked(record.name):
            if dry_run:
                if files is not None:
                    write_tree(Path(record.target_dir), files)
                return record, backend.submit(Path(record.target_dir), record, dry_run=True, address=address)
            previous = claim(record, lambda old: backend_for(old.target).state(old).active)
            try:
                if files is not None:
                    write_tree(Path(record.target_dir), files)
                said = {} if foreground else backend.submit(Path(record.target_dir), record, address=address)
            except BaseException:
                restore(record, previous)
                raise
            return record, said  # the backend saved what it started
    except OutputError as exc:
        _fail(OperatorError("output", str(exc)), output)
    except OperatorError as exc:
        _fail(exc, output)


def _positive_seconds(ctx, param, value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise click.BadParameter("must be a positive number of seconds")
    return value


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=str))
@click.option("--quiet", is_flag=True, help="Do not stream worker logs (they are always written to files).")
@IMPORT_OPTIONS
def run(source: str, quiet: bool) -> None:
    """Run SOURCE on this machine in the foreground and exit with the job's exit code.

    SOURCE is an experiment file (compiled first; commands resolve relative to its directory) or a compiled
    folder. With a driver the job ends when the driver exits, with its code; otherwise when every worker has
    ended. A failing worker stops the job; Ctrl-C stops everything in order."""
    from areal_compiler.runs.base import backend_for

    record, _ = _launch(source, _here(), "text", foreground=True)
    try:
        sys.exit(backend_for(record.target).run(record, stream_logs=not quiet))
    except OperatorError as exc:
        _fail(exc, "text")


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=str))
@click.option("--timeout", default=60.0, show_default=True, callback=_positive_seconds,
              help="Seconds to wait for every worker and fork to be ready.")
@IMPORT_OPTIONS
@OUTPUT
def start(source: str, timeout: float, output: str) -> None:
    """Start SOURCE on this machine in the background; print the run name once every worker is ready.

    A worker that fails during start-up fails the start (its exit code and last log lines are shown) and the
    run is stopped."""
    from areal_compiler.runs.base import backend_for

    record, said = _launch(source, _here(), output)
    try:
        rows = backend_for(record.target).wait_ready(record, timeout)
    except OperatorError as exc:
        _fail(exc, output)
    if output == "json":
        emit_json({"run": record.name, "target": record.target, "workers": rows})
    else:
        click.echo(record.name)


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=str))
@click.option("--target", "target", default=None, metavar="TARGET",
              help="Where to submit (default: a compiled folder's own target, or the one cluster target the "
                   "experiment configures).")
@click.option("--dry-run", is_flag=True, help="Ask the cluster whether it would accept the job; start nothing "
                                              "and record nothing.")
@click.option("--address", default=None, help="The cluster's API address where the target needs one (default: "
                                              "from the experiment or the environment).")
@IMPORT_OPTIONS
@OUTPUT
def submit(source: str, target: str | None, dry_run: bool, address: str | None, output: str) -> None:
    """Submit SOURCE (an experiment file or a compiled folder) to a cluster and record the run."""
    target = _submit_target(source, target, output)
    record, said = _launch(source, target, output, dry_run=dry_run, address=address)
    if output == "json":
        emit_json({"run": record.name, "target": target, "dry_run": dry_run, **said})
    elif dry_run:
        click.echo(said.get("verdict") or "accepted")
    else:
        ids = ", ".join(f"{k} {v}" for k, v in record.job.items() if isinstance(v, (str, int)))
        click.echo(f"{record.name}: submitted to {target}" + (f" ({ids})" if ids else ""))


def _submit_target(source: str, target: str | None, output: str) -> str:
    from areal_compiler import targets as registry

    if target is not None:
        if target not in registry.names():
            raise click.BadParameter(f"{target!r}: unknown; available: {', '.join(registry.names())}",
                                     param_hint="--target")
        return target
    path = Path(source)
    if path.is_dir() and (path / "manifest.json").is_file():
        from areal_compiler.targets.common import verify_folder

        try:
            return verify_folder(path)["target"]
        except ValueError as exc:
            _fail(OperatorError("target_unusable", str(exc)), output)
    if not path.is_dir():
        from areal_compiler.pipeline import plan_file
        from areal_compiler.printing import exit_on_diagnostics

        result = plan_file(source)
        exit_on_diagnostics([result], output)
        data = result.source.data if isinstance(result.source.data, dict) else {}
        clusters = [t for t in registry.names() if t != _here()]
        configured = [t for t in clusters if t in data]
        if len(configured) == 1:  # the one cluster target the experiment configures
            return configured[0]
        raise click.UsageError(
            f"{source} configures {len(configured)} cluster targets ({', '.join(configured)}): say which with "
            f"--target, e.g. --target {configured[0]}" if configured else
            f"{source} configures no cluster target (a top-level {' or '.join(clusters)} block): say where to "
            "submit with --target")
    raise click.UsageError("say where to submit with --target (" + ", ".join(registry.names()) + ")")


def _backend(record):
    from areal_compiler.runs.base import backend_for

    try:
        return backend_for(record.target)
    except KeyError:
        raise OperatorError("unknown_target", f"run {record.name} was made by a target this areal does not know") \
            from None


def _load(name: str, output: str):
    from areal_compiler.runs.registry import load

    try:
        record = load(name)
        return record, _backend(record)
    except OperatorError as exc:
        _fail(exc, output)


@click.command()
@click.argument("name", metavar="RUN")
@click.option("--force", is_flag=True,
              help="SIGKILL what is still alive after the grace period, where the target leaves that to us.")
@OUTPUT
def stop(name: str, force: bool, output: str) -> None:
    """Stop RUN (experiment/trial): its processes get SIGTERM and the grace period.

    A run whose record is corrupt is stopped from what its run directory on this machine shows alive; the record
    is kept for inspection."""
    try:
        result = _stop(name, force)
    except OperatorError as exc:
        _fail(exc, output)
    if output == "json":
        emit_json({"run": name, "result": result})
    else:
        click.echo(f"{name}: {result}")
    sys.exit(1 if result.startswith("still") else 0)


def _stop(name: str, force: bool) -> str:
    from areal_compiler.runs.base import backend_for
    from areal_compiler.runs.paths import record_path
    from areal_compiler.runs.registry import load

    try:
        record = load(name)
    except OperatorError as exc:
        found = backend_for(_here()).stop_unrecorded(name, force) if exc.code == "run_record_corrupt" else None
        if found is None:
            raise
        return f"{found}; its corrupt record is kept for inspection: {record_path(name)}"
    return _backend(record).stop(record, force)


def _age(iso: str) -> str:
    from datetime import datetime

    try:
        seconds = int(time.time() - datetime.fromisoformat(iso).timestamp())
    except (TypeError, ValueError):
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@click.command()
@click.option("-a", "--all", "show_all", is_flag=True, help="Include runs that have ended.")
@OUTPUT
def ps(show_all: bool, output: str) -> None:
    """List active runs (pending, starting, running, unknown) with target, state and age; -a: every run.

    A corrupt run record is listed as `corrupt` (it blocks its name until it is repaired or removed)."""
    from areal_compiler.runs.base import backend_for
    from areal_compiler.runs.registry import all_records

    rows = []
    for name, record in all_records():
        if isinstance(record, OperatorError):
            rows.append({"run": name, "target": "-", "status": "corrupt", "created_at": None, "exit_code": None,
                         "message": record.message})
            continue
        state = backend_for(record.target).state(record)
        if show_all or state.active:
            rows.append({"run": name, "target": record.target, "status": state.value,
                         "created_at": record.created_at, "exit_code": record.exit_code})
    if output == "json":
        emit_json({"runs": rows})
        return
    click.echo(f"{'RUN':<40} {'TARGET':<10} {'STATUS':<10} {'EXIT':>4}  AGE")
    for r in rows:
        code = "-" if r["exit_code"] is None else r["exit_code"]
        click.echo(f"{r['run']:<40} {r['target']:<10} {r['status']:<10} {code:>4}  {_age(r['created_at'])}")


UNWELL = ("crashed", "failed", "hung", "corrupt")


@click.command()
@click.argument("name", metavar="RUN")
@OUTPUT
def status(name: str, output: str) -> None:
    """RUN's state and every worker's (the driver first): starting, healthy, hung, crashed, completed, failed,
    stopped. Exit status 1 when the run failed or crashed, its state is unknown (the cluster could not be asked or
    gave an answer areal cannot read), or a process is crashed, failed, hung or corrupt."""
    record, backend = _load(name, output)
    state = backend.state(record)
    rows, details = backend.workers(record), backend.details(record)
    unwell = state in (state.FAILED, state.CRASHED, state.UNKNOWN) or any(r.get("status") in UNWELL for r in rows) \
        or bool(details.get("error"))  # the cluster could not be read: said, exit 1
    if output == "json":
        emit_json({"run": name, "target": record.target, "status": state.value, "exit_code": record.exit_code,
                   "workers": rows, **details})
        sys.exit(1 if unwell else 0)
    click.echo(f"{name}  target {record.target}  {state.value}"
               + ("" if record.exit_code is None else f"  exit code {record.exit_code}"))
    for key, value in details.items():
        if key == "error":
            click.echo(f"  error: {value}")
        elif isinstance(value, dict):
            facts = ", ".join(f"{k} {v}" for k, v in value.items() if isinstance(v, (str, int)) and v != "")
            click.echo(f"  {key}: {facts}")
    click.echo(f"{'WORKER':<28} {'STATUS':<10} {'HEARTBEAT':>9} {'EXIT':>5}  NOTE")
    for r in rows:
        beat = f"{r['heartbeat_age']:.1f}s" if r.get("heartbeat_age") is not None else "-"
        code = "-" if r.get("exit_code") is None else r["exit_code"]
        kind = " (forked)" if r.get("kind") == "forked" else ""
        click.echo(f"{str(r['role']) + '/' + str(r['index']) + kind:<28} {r['status']:<10} {beat:>9} {code:>5}  "
                   f"{r.get('message', '')}")
    sys.exit(1 if unwell else 0)


@click.command()
@click.argument("name", metavar="RUN")
@click.argument("worker", required=False, metavar="[ROLE[/INDEX]]")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the run ends (waits while the "
                                                   "run is pending).")
@click.option("--tail", type=click.IntRange(min=0), default=None, help="Only the last N lines of each log.")
def logs(name: str, worker: str | None, follow: bool, tail: int | None) -> None:
    """Print (or follow) the logs of RUN, every line prefixed by its worker (and the scheduler's own logs)."""
    from areal_compiler.runs.registry import load

    record, backend = _load(name, "text")
    many = worker is None or "/" not in worker
    try:
        if worker is not None:
            _check_worker(record, backend.log_names(record), worker)
        if not follow and not backend.log_files(record):
            raise OperatorError("no_logs", f"no logs yet for {name} (state {backend.state(record).value})",
                                "not_found")
        for who, line in backend.logs(record, worker, tail, follow, lambda: load(name)):
            click.echo(f"{who} | {line}" if many else line)
    except OperatorError as exc:
        _fail(exc, "text")


def _check_worker(record, names: list[str], worker: str) -> None:
    """WORKER names a process (role/index) or a role of the run, else exit 1 naming the ones it has."""
    if worker in names or worker in {n.partition("/")[0] for n in names}:
        return
    roles: dict[str, list[str]] = {}
    for n in names:
        role, _, index = n.partition("/")
        roles.setdefault(role, []).append(index)
    listed = ", ".join(f"{role}/{_span(indices)}" for role, indices in roles.items())
    _fail(OperatorError("unknown_worker", f"{record.name} has no worker or role {worker!r}; it has "
                                          f"{listed or 'none known'} (a role name shows all of its workers)",
                        "not_found"), "text")


def _span(indices: list[str]) -> str:
    """`0..7` for consecutive worker indices, else them all."""
    if len(indices) > 2 and all(i.isdigit() for i in indices):
        numbers = sorted(map(int, indices))
        if numbers == list(range(numbers[0], numbers[-1] + 1)):
            return f"{numbers[0]}..{numbers[-1]}"
    return ",".join(indices)


COMMANDS = (run, start, submit, stop, ps, status, logs)
