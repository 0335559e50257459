"""pydantic without plugin discovery, for the `areal` command: cli.py calls `disable()` before pydantic is imported.

pydantic looks for plugins (the `pydantic` entry-point group) when the first model is built. Finding none still
costs importing importlib.metadata (which imports the email package) and scanning every installed distribution's
metadata: about a tenth of a cold compile. This project uses no pydantic plugins. PYDANTIC_DISABLE_PLUGINS=__all__,
pydantic's own switch, skips only the scan, because the module holding the discovery imports importlib.metadata
at its top; so that module (pydantic.plugin._loader, whose one name pydantic uses is get_plugins) is stood in for
by one whose get_plugins finds none, which is what the variable makes the real one return."""
from __future__ import annotations

import sys
import types

LOADER = "pydantic.plugin._loader"


def disable() -> None:
    """Stand in for pydantic's plugin loader unless it was already imported (then it is left as it is)."""
    if LOADER not in sys.modules:
        stand_in = types.ModuleType(LOADER, "areal_compiler.noplugins: pydantic plugins are disabled")
        stand_in.get_plugins = lambda: ()
        stand_in.__getattr__ = _real
        sys.modules[LOADER] = stand_in


def _real(name: str):
    """Any other name (a pydantic release that uses more of the module) comes from the real loader, imported in
    the stand-in's place: slower, never broken."""
    if name.startswith("__"):  # the import system's own probes (__path__, ...): a plain module has none
        raise AttributeError(name)
    import importlib

    if getattr(sys.modules.get(LOADER), "__getattr__", None) is _real:
        del sys.modules[LOADER]
    return getattr(importlib.import_module(LOADER), name)
