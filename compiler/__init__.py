"""areal compile: a declarative job compiler for distributed RL training of LLMs.

Imported by the `areal` console script and by `python -m areal_compiler`."""
