"""The import options shared by validate/plan/compile/run/start/submit: --from, --accelerator, --driver, --overlay.

Applied as a decorator in cli.py and cli_runs.py; read by importers/load.py. Imports only click (fast start-up)."""
from __future__ import annotations

import contextvars
from dataclasses import dataclass

import click


@dataclass(frozen=True)
class ImportOptions:
    source_format: str = "auto"  # "auto": recognize upstream configs by their shape; "areal": always import
    accelerator: str | None = None
    driver: str | None = None
    overlay: str | None = None


CURRENT: contextvars.ContextVar[ImportOptions] = contextvars.ContextVar("import_options", default=ImportOptions())


def _remember(ctx: click.Context, param: click.Parameter, value):
    fields = dict(ctx.meta.get("areal_import", {}), **{param.name: value})
    ctx.meta["areal_import"] = fields
    CURRENT.set(ImportOptions(**{k: v for k, v in fields.items() if v is not None}))
    return value


def IMPORT_OPTIONS(command):  # noqa: N802 - used as a decorator, like click's own
    """--from, --accelerator, --driver, --overlay: how to read an upstream AReaL config (see docs/running-areal.md)."""
    options = [
        click.option("--from", "source_format", type=click.Choice(["auto", "areal"]), default="auto",
                     show_default=True, expose_value=False, callback=_remember, is_eager=True,
                     help="Input format: auto recognizes upstream AReaL configs by their shape; areal forces it."),
        click.option("--accelerator", metavar="TYPE", expose_value=False, callback=_remember, is_eager=True,
                     help="Upstream configs only: the node type (see `areal catalog`); else derived, with a warning."),
        click.option("--driver", metavar="CMD", expose_value=False, callback=_remember, is_eager=True, help=(
                     "Upstream configs only: the training script's command line (gets --config areal-config.yaml).")),
        click.option("--overlay", metavar="FILE", type=click.Path(dir_okay=False, path_type=str), expose_value=False,
                     callback=_remember, is_eager=True,
                     help="Upstream configs only: a YAML file of our own keys laid over the imported experiment."),
    ]
    for option in reversed(options):
        command = option(command)
    return command
