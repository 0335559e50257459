"""How commands print: human text by default, or one JSON envelope with `-o json`.

Called by cli.py; data goes to stdout, diagnostics and logs to stderr, so stdout always parses."""
from __future__ import annotations

import json
import os
import re
import sys
from datetime import datetime, timezone

import click

from areal_compiler.diagnostics import UNPRINTABLE, Diagnostic, printable

ENVELOPE_VERSION = 1

OUTPUT = click.option("-o", "--output", "output", type=click.Choice(["text", "json"]), default="text",
                      show_default=True, help="Human text, or one JSON envelope on stdout.")


def now_iso() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def dumps(envelope: dict) -> str:
    """The envelope as UTF-8-safe JSON that reads as it parses: a lone surrogate (a file name that is not UTF-8)
    stays a `\\udcff` escape instead of making stdout unencodable, and an invisible character (a right-to-left
    override in a path) a `\\u202e` escape; the values are unchanged."""
    return UNPRINTABLE.sub(_json_escape, json.dumps(envelope, indent=2, ensure_ascii=False))


def _json_escape(match: re.Match) -> str:
    code = ord(match.group())
    if code == 0x0A:  # the indentation's line breaks (json.dumps escapes those inside strings)
        return "\n"
    if code > 0xFFFF:  # JSON spells these as a surrogate pair
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def emit_json(data) -> None:
    click.echo(dumps({"v": ENVELOPE_VERSION, "ts": now_iso(), "data": data}))


def emit_error(code: str, kind: str, message: str, retryable: bool = False, json_output: bool = False) -> None:
    message = printable(message)  # a name or path may hold a line break or a right-to-left override
    if json_output:
        error = {"code": code, "kind": kind, "message": message, "retryable": retryable}
        click.echo(dumps({"v": ENVELOPE_VERSION, "ts": now_iso(), "error": error}))
    else:
        click.echo(f"error: {message}", err=True)


def print_diagnostics(diags: list[Diagnostic]) -> None:
    color = sys.stderr.isatty() and "NO_COLOR" not in os.environ
    for d in diags:
        text = d.render()
        if color:
            head, _, rest = text.partition("\n")
            head = click.style(head, fg="red" if d.is_error else "yellow", bold=True)
            text = head + ("\n" + rest if rest else "")
        click.echo(text, err=True)


def summary(diags: list[Diagnostic], files: int) -> str:
    errors = sum(d.is_error for d in diags)
    warnings = len(diags) - errors
    what = f"{files} file" + ("s" if files != 1 else "")
    if not errors:
        return f"{what} valid" + (f", {warnings} warning(s)" if warnings else "")
    return f"{errors} error(s), {warnings} warning(s) in {what}"


def exit_on_diagnostics(results, output: str) -> None:
    """Print every diagnostic of every input; exit 1 when any input is invalid (nothing written)."""
    diags = [d for r in results for d in r.diagnostics]
    if all(r.ok for r in results):
        print_diagnostics(diags)  # warnings only
        return
    if output == "json":
        emit_json({"valid": False, "files": [{"file": r.file, "valid": r.ok,
                                               "diagnostics": [d.to_json() for d in r.diagnostics]} for r in results]})
    else:
        print_diagnostics(diags)
        click.echo(summary(diags, len(results)), err=True)
    sys.exit(1)
