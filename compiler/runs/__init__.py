"""Running compiled experiments and the run registry shared by every target.

Used by the operator verbs in cli_runs.py."""
