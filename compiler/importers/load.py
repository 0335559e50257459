"""Loading an input: our own experiment YAML as is, or an upstream AReaL config through the importer.

Called by check.py for every input; the import options come from importers/options.py (set by the CLI)."""
from __future__ import annotations

from pathlib import Path

from areal_compiler.importers.options import CURRENT, ImportOptions
from areal_compiler.source import Source, _fail, load


def load_source(path: str, name: str | None = None, options: ImportOptions | None = None) -> Source:
    """Our experiment as a Source: read directly, or imported from an upstream config. Raises SourceError."""
    options = options or CURRENT.get()
    source = load(path, name)
    if options.source_format != "areal" and not is_upstream(source.data) and _foreign(source.data):
        first = next(iter(source.data))
        raise _fail(source.name, "E524", "this file is not an experiment: it has none of our keys (compute, roles, "
                    "...) and is not an upstream AReaL config (experiment_name with cluster, actor or rollout)",
                    f"`{first}` is neither's; compile an experiment file (see docs/running-areal.md: Running AReaL "
                    "with areal compile)", source.key_spans.get((first,)), source.text)
    if options.source_format != "areal" and not is_upstream(source.data):
        if options.overlay or options.driver or options.accelerator:
            raise _fail(source.name, "E518", "--accelerator, --driver and --overlay apply to imported upstream "
                        "configs; this file is in our own format", "write those settings into the file itself")
        return source
    if not isinstance(source.data, dict):
        raise _fail(source.name, "E511", "an upstream AReaL config is a mapping of keys (experiment_name, "
                    "cluster, actor, ...)")
    from areal_compiler.importers.areal import import_areal  # only for upstream configs: our own never pay for it
    from areal_compiler.targets import names

    try:
        raw = Path(path).read_bytes()  # the original bytes travel with the artifacts, unchanged
    except OSError as exc:
        raise _fail(source.name, "E101", f"cannot read file: {exc.strerror}") from None
    imported = import_areal(source, raw, options.accelerator, options.driver, names())
    imported.problems = list(source.problems) + imported.problems
    if options.overlay:
        from areal_compiler.importers.overlay import apply_overlay

        apply_overlay(imported, load(options.overlay))
    if "driver" not in imported.data and not imported.failed:
        roles = ", ".join(imported.data.get("roles", {}))
        imported.problems.append(imported.diagnostic(
            "W513", f"no --driver: the job starts upstream's worker servers ({roles}) but nothing drives them (the "
                    "training script is upstream's controller); they wait until the job is stopped",
            ("experiment_name",), "add it with --driver 'python3 examples/math/gsm8k_rl.py' (it gets --config "
                                  "areal-config.yaml), or `driver: {cmd: ..., upstream: areal}` in an --overlay",
            key=True, severity="warning"))
    return imported


def is_upstream(data) -> bool:
    """Upstream's shape: names plus cluster/actor/rollout/allocation_mode, and none of our own `compute`/`roles`."""
    return (isinstance(data, dict) and "experiment_name" in data and "compute" not in data
            and "roles" not in data and any(k in data for k in ("cluster", "actor", "rollout", "allocation_mode")))


def _foreign(data) -> bool:
    """A non-empty mapping without a top-level key of our format or one close to it (a misspelled experiment of ours
    is not foreign: its E201 says did-you-mean), e.g. a SkyPilot task or an environment file."""
    from areal_compiler.spec.records import allowed_keys

    ours = allowed_keys(())
    if not isinstance(data, dict) or not data or set(map(str, data)) & set(ours):
        return False
    from difflib import get_close_matches  # only for a file without one key of ours

    return not any(get_close_matches(str(key).replace("-", "_"), ours, n=1, cutoff=0.8) for key in data)
