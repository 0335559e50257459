"""The CLI with the Kubernetes target: compiling never imports the `kubernetes` client (it costs ~370 ms)."""
from __future__ import annotations

import subprocess
import sys

from helpers import ROOT

CODE = """import sys
from areal_compiler.cli import main
try:
    main({args!r})
except SystemExit as exc:
    print('EXIT=%s' % exc.code, file=sys.stderr)
print('HEAVY=' + ','.join(m for m in ('kubernetes', 'kubernetes_validate') if m in sys.modules), file=sys.stderr)
"""


def _run(args):
    return subprocess.run([sys.executable, "-c", CODE.format(args=args)], capture_output=True, text=True, cwd=ROOT)


def test_compile_for_kubernetes_imports_no_client(tmp_path):
    out = _run(["compile", str(ROOT / "examples" / "two-node-decoupled.yaml"), "--target", "kubernetes",
                "--out", str(tmp_path / "o")])
    assert "EXIT=0" in out.stderr and "HEAVY=\n" in out.stderr, out.stderr
    assert (tmp_path / "o" / "kubernetes" / "kustomization.yaml").is_file()


def test_help_imports_no_client():
    out = _run(["--help"])
    assert "HEAVY=\n" in out.stderr, out.stderr
