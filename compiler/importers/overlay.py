"""An overlay: a YAML file of OUR experiment keys laid over an imported config (e.g. accelerator, slurm, driver).

Called by importers/__init__.py after the import; overlay values keep their own file:line:col."""
from __future__ import annotations

from areal_compiler.importers.imported import ImportedSource
from areal_compiler.importers.interpolate import Origin
from areal_compiler.source import Source, _fail


def apply_overlay(target: ImportedSource, overlay: Source) -> None:
    """Mappings merge key by key; any other value replaces what the import produced."""
    if not isinstance(overlay.data, dict):
        raise _fail(overlay.name, "E519", "an overlay is a mapping of our experiment keys (compute, slurm, "
                    "driver, roles, ...)", "see docs/running-areal.md: Importing upstream AReaL configs")
    target.problems += overlay.problems
    _merge(target, overlay, target.data, overlay.data, ())
    compute = overlay.data.get("compute")
    if isinstance(compute, dict) and "accelerator" in compute and "num_accelerators" not in compute:
        _renumber(target, overlay)
        target.problems = [d for d in target.problems if d.code != "W504"]  # no longer derived


def _merge(target: ImportedSource, overlay: Source, into: dict, data: dict, path: tuple) -> None:
    for key, value in data.items():
        here = path + (key,)
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(target, overlay, into[key], value, here)
            continue
        into[key] = value
        for known in [p for p in target.origins if p[:len(here)] == here]:
            del target.origins[known]
            target.upstream_paths.pop(known, None)
        for sub, span in overlay.value_spans.items():
            if sub[:len(here)] == here:
                target.origins[sub] = Origin(overlay, span, label="set in the overlay")
        if here in overlay.key_spans:
            target.key_origins[here] = Origin(overlay, overlay.key_spans[here])


def _renumber(target: ImportedSource, overlay: Source) -> None:
    """An overlay's accelerator keeps the upstream node count: num_accelerators = n_nodes x its devices per node."""
    from areal_compiler.spec.catalog import CATALOG

    entry = CATALOG.get(target.data["compute"]["accelerator"])
    if entry is not None and target.cluster_nodes:
        target.data["compute"]["num_accelerators"] = target.cluster_nodes * entry.devices_per_node
