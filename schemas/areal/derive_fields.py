"""Derives upstream AReaL's config field tables (class, field, type, default, checks) from an upstream source tree.

Run by hand when a new upstream version appears (README "Upstream AReaL versions"); tests/importer/test_fields.py
checks the committed tables are this script's output. Reads the files with `ast`: upstream is never imported."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from areal_compiler.importers.fields import read_classes, read_constants

CLI_ARGS = "areal/api/cli_args.py"
CONSTANTS = "areal/utils/constants.py"  # names cli_args.py imports for its defaults


def derive(root: Path, version: str, source: str) -> dict:
    constants_file = root / CONSTANTS
    constants = read_constants(constants_file.read_text(), str(constants_file)) if constants_file.exists() else {}
    text = (root / CLI_ARGS).read_text()
    return {"areal_version": version, "source": source,
            "classes": read_classes(text, str(root / CLI_ARGS), constants)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help=f"a folder holding {CLI_ARGS}: a checkout or site-packages")
    parser.add_argument("version", help="upstream's version, e.g. 2.0.0")
    parser.add_argument("source", help="where the files came from, e.g. 'areal-project/AReaL cbff54d'")
    args = parser.parse_args(argv)
    if not (args.root / CLI_ARGS).is_file():
        parser.error(f"{args.root / CLI_ARGS} does not exist")
    json.dump(derive(args.root, args.version, args.source), sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
