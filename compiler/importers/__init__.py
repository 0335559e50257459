"""Front ends for configs written for other tools; today upstream AReaL's experiment YAML (importers/areal.py).

check.py loads every input through importers/load.py; importers/options.py gives commands --from and friends."""
