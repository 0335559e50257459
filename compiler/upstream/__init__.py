"""Glue between upstream AReaL's controller and the compiled plan: the planned scheduler and the trainer runner.

Imported only where the driver runs, with the `areal` package installed; the rest of areal_compiler reads only
CONFIG_NAME from here (the import names the config's copy with it; run_trainer finds it by it)."""

CONFIG_NAME = "areal-config.yaml"  # an imported upstream config, byte for byte, in every compiled folder
