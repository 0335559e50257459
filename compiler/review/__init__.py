"""`areal diff`: what a change of an experiment does to the job (roles, placement, totals, what each target asks a
cluster for, commands, environment, ports, the gate), compared on the two plans, never on the generated files' text.

Called by cli.py (`areal diff`); sides.py reads the two versions, compare.py and workers.py and asks.py find the
changes (changes.py holds their shape), report.py prints them."""
