"""The `areal` command line: thin click commands that parse options, call the pipeline and print.

Entry point of the `areal` console script and `python -m areal_compiler`. Heavy imports stay inside commands."""
from __future__ import annotations

import gc
import os
import sys

import click

from areal_compiler.importers.options import IMPORT_OPTIONS
from areal_compiler.printing import OUTPUT, exit_on_diagnostics
from areal_compiler.schema import SCHEMAS


INTERNAL_ERROR = 70  # EX_SOFTWARE: a bug in areal, not in the input
BROKEN_PIPE = 128 + 13  # what a shell reports for a process ended by SIGPIPE
ONE_SHOT = ("validate", "plan", "diff", "compile", "catalog", "schema")
OPERATOR_VERBS = ("run", "start", "submit", "stop", "ps", "status", "logs")  # cli_runs.COMMANDS, imported when used
UPSTREAM_GROUPS = ("train", "inf", "agent")  # upstream AReaL 2.0's CLI (upstream_cli.GROUPS), handed over


ARGV = "areal.argv"  # ctx.meta key: the arguments as given


def _json_requested(argv) -> bool:
    """`-o json`, `-ojson`, `--output json` or `--output=json` among the arguments (before a `--`)."""
    argv = list(argv)
    argv = argv[:argv.index("--")] if "--" in argv else argv
    pairs = zip(argv, argv[1:] + [""])
    return any(a in ("-ojson", "--output=json") or (a in ("-o", "--output") and b == "json") for a, b in pairs)


def _silence_output() -> None:
    """Point stdout and stderr at /dev/null so the interpreter's final flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError):  # not a real file (a test runner's capture)
            pass
    os.close(devnull)


class Areal(click.Group):
    """Turns an unexpected exception (a bug in areal) into one clear line instead of a traceback; a reader that
    went away (`areal status RUN | head -1`) ends the command quietly, as SIGPIPE ends Unix tools (exit 141);
    with `-o json`, a usage error of any command (a bad option value, a missing file, refusing to replace OUT)
    also prints the error envelope on stdout; imports the operator verbs only when one of them is asked for."""

    def parse_args(self, ctx, args):
        ctx.meta[ARGV] = list(args)  # the command line as given: whether -o json was asked for, even if unparsable
        return super().parse_args(ctx, args)

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *OPERATOR_VERBS})

    def get_command(self, ctx, name):
        if name in OPERATOR_VERBS and name not in self.commands:
            _register_operator_verbs()
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            from areal_compiler.diagnostics import printable

            exc.message = printable(exc.message)  # it may echo a path or value holding invisible characters
            if _json_requested(ctx.meta.get(ARGV, ())):
                from areal_compiler.printing import emit_error

                emit_error("usage_error" if exc.exit_code == 2 else "error", "invalid", exc.format_message(),
                           json_output=True)
            raise
        except (click.exceptions.Exit, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except BrokenPipeError:
            _silence_output()
            sys.exit(BROKEN_PIPE)
        except Exception as exc:  # noqa: BLE001 - the last resort for bugs; AREAL_DEBUG shows the traceback
            if os.environ.get("AREAL_DEBUG"):
                raise
            click.echo(f"internal error (a bug in areal, not in your input): {type(exc).__name__}: {exc}\n"
                       "rerun with AREAL_DEBUG=1 for the traceback and report it", err=True)
            sys.exit(INTERNAL_ERROR)


def _version(ctx: click.Context, _param, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from areal_compiler.upstream_cli import version_text

        click.echo(version_text())
        ctx.exit()


@click.group(cls=Areal, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_version,
              help="Show this program's version, the upstream AReaL schema it knows, and upstream's own CLI.")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Compile declarative AReaL experiments into reviewable job artifacts for every target, and operate runs.

    `areal train`, `areal inf` and `areal agent` are upstream AReaL's own CLI (2.0): they are handed to it when it
    is installed. This program is also installed as `areal-compile`."""
    if ctx.invoked_subcommand in ONE_SHOT:
        # A one-shot command builds long-lived objects (modules, classes, the plan) and exits: the collector's
        # passes over them, while importing and again at interpreter exit, cost CPU and free nothing.
        gc.disable()
        ctx.call_on_close(_end_one_shot)


def _end_one_shot() -> None:
    """Moves what the command built out of the collector's sight (the exit would walk it to free nothing), then
    resumes collecting (for callers that invoke commands in-process, such as tests)."""
    global _one_shot_ended
    gc.freeze()
    gc.enable()
    _one_shot_ended = True


_one_shot_ended = False  # set when a one-shot command has run; read by run()


def run() -> None:
    """The `areal` program (console script, `python -m areal_compiler`): main(); after a one-shot command, the
    process ends without the interpreter's teardown, which would free every module and object one by one (a few
    ms of a cold compile) for memory the exit returns anyway. Nothing is left to finalize then: no atexit
    callbacks, no threads, every file closed; the standard streams are flushed first and the exit code is the
    same. Callers that invoke `main` in-process (tests) keep the ordinary exit."""
    if len(sys.argv) > 1 and sys.argv[1] in UPSTREAM_GROUPS:
        from areal_compiler.upstream_cli import hand_over

        hand_over(sys.argv)
    try:
        main()
    except SystemExit as exc:
        if not _one_shot_ended or not (exc.code is None or isinstance(exc.code, int)):
            raise
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):  # a reader that went away: let the ordinary exit report it as before
            raise exc from None
        os._exit(exc.code or 0)


def _targets(value: str | None) -> tuple[str, ...] | None:
    """--target: a comma list or `all`; None (not given) means the targets the experiment configures."""
    from areal_compiler import targets as registry

    if value is None:
        return None
    known = registry.names()
    names = known if value == "all" else tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise click.BadParameter(f"{', '.join(unknown) or value!r}: unknown; available: {', '.join(known)} or all",
                                 param_hint="--target")
    return tuple(n for n in known if n in names)


TARGET_OPTION = click.option(
    "--target", "target", default=None, metavar="T[,T...]|all",
    help="Targets to check and render (default: the targets the experiment configures with a top-level block "
         "of that name, else all).")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True, path_type=str))
@TARGET_OPTION
@IMPORT_OPTIONS
@OUTPUT
def validate(files: tuple[str, ...], target: str | None, output: str) -> None:
    """Check experiment FILES and report every problem with its file:line:col.

    Runs everything `compile` runs (placement and every target's own checks) except writing, so an experiment
    validates exactly when it compiles. Exit status: 0 valid, 1 invalid input, 2 usage error."""
    from areal_compiler.pipeline import compile_file
    from areal_compiler.printing import emit_json, print_diagnostics, summary

    targets = _targets(target)
    results = [compile_file(f, targets) for f in files]
    diags = [d for r in results for d in r.diagnostics]
    valid = all(r.ok for r in results)
    if output == "json":
        emit_json({"valid": valid, "files": [
            {"file": f, "valid": r.ok, "diagnostics": [d.to_json() for d in r.diagnostics]}
            for f, r in zip(files, results)]})
    else:
        print_diagnostics(diags)
        click.echo(summary(diags, len(files)), err=not valid)
    sys.exit(0 if valid else 1)


@main.command()
@click.argument("name", type=click.Choice(SCHEMAS), default="experiment")
def schema(name: str) -> None:
    """Print a JSON Schema: the experiment format (default) or a target's own file format.

    The committed copies live in schemas/; editors pick them up from the examples' first line."""
    from areal_compiler.schema import schema_text

    click.echo(schema_text(name), nl=False)


@main.command()
@OUTPUT
def catalog(output: str) -> None:
    """List the accelerator types and what each target requests for them."""
    from areal_compiler.printing import emit_json
    from areal_compiler.spec.catalog import CATALOG

    if output == "json":
        emit_json({"accelerators": [a.to_json() for a in CATALOG.values()]})
        return
    from areal_compiler.spec.catalog import table

    click.echo(table(), nl=False)


@main.command()
@click.argument("file", type=click.Path(dir_okay=True, path_type=str))
@click.option("--format", "fmt", type=click.Choice(["text", "svg"]), default="text", show_default=True,
              help="text: a placement map; svg: the same map as a picture for PR descriptions.")
@IMPORT_OPTIONS
@OUTPUT
def plan(file: str, fmt: str, output: str) -> None:
    """Show where every worker of FILE lands: nodes x devices, forks, totals per role.

    `-o json` prints the whole plan (the input of every target)."""
    from areal_compiler.plan import picture, view as planview
    from areal_compiler.pipeline import plan_file
    from areal_compiler.printing import emit_json

    if fmt == "svg" and output == "json":
        raise click.UsageError("--format svg draws the plan and -o json prints it as data: choose one")
    result = plan_file(file)
    exit_on_diagnostics([result], output)
    if output == "json":
        emit_json(result.plan.dump())
    else:
        click.echo(picture.svg(result.plan) if fmt == "svg" else planview.text(result.plan), nl=False)


@main.command(name="diff")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True, path_type=str))
@click.option("--base", metavar="REV", help="Compare FILE with itself at git revision REV (read with `git show`, "
                                            "no checkout), e.g. origin/main.")
@TARGET_OPTION
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "svg"]), default="text", show_default=True,
              help="text; markdown (a PR comment or CI job summary); svg (the new placement, moved, added and "
                   "removed workers marked).")
@IMPORT_OPTIONS
@OUTPUT
def diff(files: tuple[str, ...], base: str | None, target: str | None, fmt: str, output: str) -> None:
    """Show what changes between two versions of an experiment, in the job's terms: OLD NEW, or FILE --base REV.

    Roles, placement, totals, what each target asks a cluster for, commands, environment, ports, the gate, then
    every other setting by its key path. Exit status (as diff): 0 no change, 1 changes (or an invalid side, whose
    diagnostics are printed), 2 usage error."""
    from areal_compiler.plan import picture
    from areal_compiler.printing import emit_json
    from areal_compiler.review import report
    from areal_compiler.review.sides import read_sides, review

    if output == "json" and fmt != "text":
        raise click.UsageError("-o json prints the changes as data; leave out --format (or drop -o json)")
    old, new = read_sides(files, base, _targets(target))
    exit_on_diagnostics([s.result for s in (old, new) if s.result is not None and not s.result.ok], output)
    result = review(old, new)
    if output == "json":
        emit_json(report.data(result))
    elif fmt == "svg":
        click.echo(picture.svg(new.plan, result.marks) if result.shown else "", nl=False)
    else:
        click.echo(report.markdown(result) if fmt == "markdown" else report.text(result), nl=False)
    sys.exit(1 if result.shown else 0)


@main.command(name="compile")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True, path_type=str))
@TARGET_OPTION
@click.option("--out", "out", default="out", show_default=True, type=click.Path(path_type=str),
              help="Output folder; each target gets OUT/<target>/ (several inputs: OUT/<stem>/<target>/).")
@click.option("--check", is_flag=True, help="Compare with OUT instead of writing; exit 1 when anything differs.")
@click.option("--diff", is_flag=True, help="Print a unified diff against OUT (without writing).")
@click.option("--layout", type=click.Choice(["bundle", "review"]), default="bundle", show_default=True,
              help="bundle: every target folder self-contained, to run or submit; review: to commit and review "
                   "(the plan once, no agent.pyz or other shipped file, each pinned by its sha256).")
@IMPORT_OPTIONS
@OUTPUT
def compile_(files: tuple[str, ...], target: str | None, out: str, check: bool, diff: bool, layout: str,
             output: str) -> None:
    """Compile experiment FILES into job artifacts, deterministically.

    Writing is atomic: everything is rendered in memory, written to a temporary folder beside OUT and
    swapped in; a failed compile leaves OUT untouched. Exit status: 0 done (or up to date with --check),
    1 invalid input or stale artifacts, 2 usage error."""
    from pathlib import Path

    from areal_compiler.layouts import review
    from areal_compiler.writing import OutputError, compare, unified_diff, write_tree
    from areal_compiler.pipeline import compile_file
    from areal_compiler.printing import emit_json

    targets = _targets(target)
    stems = [Path(f).stem for f in files]
    if len(set(stems)) != len(stems):
        raise click.UsageError("two inputs share a file name; compile them into separate --out folders")
    results = [compile_file(f, targets) for f in files]
    exit_on_diagnostics(results, output)
    tree = {(f"{stem}/{rel}" if len(files) > 1 else rel): a for stem, r in zip(stems, results)
            for rel, a in (review(r.artifacts) if layout == "review" else r.artifacts).items()}
    out_dir = Path(out)
    rendered = sorted({rel.split("/", 1)[0] for r in results for rel in r.artifacts})
    report: dict = {"out": out, "targets": rendered, "files": sorted(tree)}
    if check or diff:
        comparison = compare(out_dir, tree)
        report.update(up_to_date=comparison.same, changed=comparison.changed, missing=comparison.missing,
                      extra=comparison.extra)
        text = unified_diff(out_dir, tree, comparison) if diff else ""
        if output == "json":
            emit_json({**report, **({"diff": text} if diff else {})})
        else:
            click.echo(text, nl=False)
            for kind in ("changed", "missing", "extra"):
                for rel in getattr(comparison, kind):
                    click.echo(f"{kind}: {out_dir / rel}", err=True)
            click.echo(f"{out}: up to date" if comparison.same else
                       f"{out}: stale ({len(comparison.changed)} changed, {len(comparison.missing)} missing, "
                       f"{len(comparison.extra)} extra); run `areal compile"
                       f"{' --layout review' if layout == 'review' else ''}` to update", err=True)
        sys.exit(1 if check and not comparison.same else 0)
    try:
        written = write_tree(out_dir, tree)
    except OutputError as exc:
        raise click.UsageError(str(exc)) from None
    through = "" if written == out_dir else f" (through the link, into {written})"
    if output == "json":
        emit_json({**report, "written": True, "written_to": str(written)})
    else:
        click.echo(f"wrote {len(tree)} files for {', '.join(rendered)} to {out}{through}", err=True)


def _register_operator_verbs() -> None:
    from areal_compiler import cli_runs

    for command in cli_runs.COMMANDS:
        main.add_command(command)

