"""Every compiled file grows at most linearly with the workers (no per-worker copy of per-node facts), and the
benchmark script runs. Sizes only: nothing here times anything."""
from __future__ import annotations

import json
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


def test_run_benchmark_runs_small(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "bench" / "bench_run.py"), "--servers", "2", "--nodes",
                          "2", "--probes", "1"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "6 of 6 processes healthy" in out.stdout and ", 0 left" in out.stdout  # started, stopped, nothing left
    assert "areal status scale/trial0 -o json" in out.stdout and "19 lines" in out.stdout  # 16 state files


def test_fork_benchmark_measures_a_chunk(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "bench" / "bench_agent.py"), "--fork-only", "2", "2"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)) == 2  # a latency per round: every fork got its child listening
