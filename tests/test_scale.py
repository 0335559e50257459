"""Every compiled file grows at most linearly with the workers (no per-worker copy of per-node facts), and the
benchmark script runs. Sizes only: nothing here times anything."""
from __future__ import annotations

import subprocess
import sys

from helpers import ROOT

sys.path.insert(0, str(ROOT / "tests" / "bench"))
from synthetic import FORKS_PER_NODE, WORKERS_PER_NODE, synthetic  # noqa: E402  (the benchmarks' experiment)


def sizes(tmp_path, nodes: int) -> dict[str, int]:
    from areal_compiler.pipeline import compile_file
    from areal_compiler.targets import names

    path = tmp_path / f"scale-{nodes}.yaml"
    path.write_text(synthetic(nodes))
    result = compile_file(str(path), names())
    assert result.ok, [d.message for d in result.diagnostics]
    assert len(result.plan.workers) == WORKERS_PER_NODE * nodes + 1  # and the driver
    assert sum(len(w.forks) for w in result.plan.workers) == FORKS_PER_NODE * nodes
    return {rel: len(a.content) for rel, a in result.artifacts.items()}


def test_every_file_grows_at_most_linearly(tmp_path):
    small, large = sizes(tmp_path, 8), sizes(tmp_path, 32)
    assert small.keys() == large.keys()
    for rel in small:
        assert large[rel] <= 4.2 * small[rel], f"{rel}: {small[rel]} -> {large[rel]} bytes for 4x the workers"


def test_benchmark_runs_quick(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "bench" / "bench_compile.py"), "--quick",
                          "--sizes", "2,4"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for heading in ("## cold start", "## in-process", "## scale sweep", "## file growth", "## frontier"):
        assert heading in out.stdout
    assert "x import floor" in out.stdout
