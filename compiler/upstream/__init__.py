"""Glue between upstream AReaL's controller and the compiled plan: the planned scheduler and the trainer runner.

Imported only where the driver runs, with the `areal` package installed; nothing else in areal_compiler imports it."""
