"""The runtime agent: supervises one worker, forks colocated workers, serves the staleness gate.

Bundled by compiler/bundle.py into agent.pyz (stdlib only, Python 3.9+); run through __main__.py / cli.py."""
