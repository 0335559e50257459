"""Entry point for `python -m areal_compiler`; the same as the `areal` console script."""
from areal_compiler.cli import run

run()
