"""The `areal` command line: thin click commands that parse options, call the pipeline and print.

Entry point of the `areal` console script and `python -m areal_compiler`. Heavy imports stay inside commands."""
from __future__ import annotations

import json
import sys

import click

OUTPUT = click.option("-o", "--output", "output", type=click.Choice(["text", "json"]), default="text",
                      show_default=True, help="Human text, or one JSON envelope on stdout.")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="areal-compile", prog_name="areal")
def main() -> None:
    """Compile declarative AReaL experiments into Slurm, Kubernetes, Ray and local job artifacts."""


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True, path_type=str))
@OUTPUT
def validate(files: tuple[str, ...], output: str) -> None:
    """Check experiment FILES and report every problem with its file:line:col.

    Exit status: 0 valid, 1 invalid input, 2 usage error."""
    from areal_compiler.check import check_file
    from areal_compiler.report import emit_json, print_diagnostics, summary

    results = [check_file(f) for f in files]
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
def schema() -> None:
    """Print the JSON Schema of the experiment format (for editors and CI)."""
    from areal_compiler.schema import experiment_schema

    click.echo(json.dumps(experiment_schema(), indent=2, sort_keys=True, ensure_ascii=False))


@main.command()
@OUTPUT
def catalog(output: str) -> None:
    """List the accelerator types and what each target requests for them."""
    from areal_compiler.report import emit_json
    from areal_compiler.spec.catalog import CATALOG

    if output == "json":
        emit_json({"accelerators": [a.to_json() for a in CATALOG.values()]})
        return
    click.echo(f"{'TYPE':<18} {'PER NODE':>8} {'MEMORY':>7}  {'KUBERNETES':<24} {'SLURM GRES':<12} RAY")
    for a in CATALOG.values():
        gres = f"{a.slurm_gres}:{a.slurm_gres_type}" if a.slurm_gres else "-"
        click.echo(f"{a.name:<18} {a.devices_per_node:>8} {str(a.device_memory_gb) + 'G':>7}  "
                   f"{a.kubernetes_resource or '-':<24} {gres:<12} {a.ray_resource or '-'}")
