"""`python -m areal_compiler.agent` (and the agent.pyz launcher, which imports this package's cli).

Runs the agent command line and exits with its code."""
from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
