"""Benchmark: `areal compile` wall time in a fresh process, in-process throughput, and CLI start-up.

Prints numbers (ratios against baselines measured in the same run); asserts nothing about time.
Run: python tests/bench/bench_compile.py [--repeat N]"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def wall(argv: list[str], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def show(name: str, times: list[float], baseline: float | None = None) -> float:
    median = statistics.median(times)
    ratio = f"  ({median / baseline:.2f}x baseline)" if baseline else ""
    print(f"{name:<52} median {median * 1000:7.1f} ms  min {min(times) * 1000:7.1f} ms{ratio}")
    return median


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    py = sys.executable
    print(f"python {sys.version.split()[0]}, {len(EXAMPLES)} examples, {args.repeat} runs each\n")
    bare = show("python -c pass (interpreter start)", wall([py, "-c", "pass"], args.repeat))
    click_import = show("python -c 'import click' (baseline for --help)", wall([py, "-c", "import click"], args.repeat))
    show("areal --help", wall([py, "-m", "areal_compiler", "--help"], args.repeat), click_import)
    show("areal validate (one example)", wall([py, "-m", "areal_compiler", "validate", str(EXAMPLES[0])],
                                              args.repeat), click_import)
    with tempfile.TemporaryDirectory() as tmp:
        example = ROOT / "examples" / "two-node-decoupled.yaml"
        show("areal compile two-node-decoupled --target all",
             wall([py, "-m", "areal_compiler", "compile", str(example), "--out", f"{tmp}/o"], args.repeat), bare)

    from areal_compiler.pipeline import compile_file
    from areal_compiler.targets import names as target_names

TARGETS = target_names()

    compile_file(str(EXAMPLES[0]), TARGETS)  # warm imports and the agent bundle
    start = time.perf_counter()
    count = 0
    for _ in range(100):
        for example in EXAMPLES:
            assert compile_file(str(example), TARGETS).ok
            count += 1
    elapsed = time.perf_counter() - start
    print(f"\nin-process: {count} compiles (all examples x 100, targets {','.join(TARGETS)}) in {elapsed:.2f} s"
          f" = {count / elapsed:.1f} compiles/s, {elapsed / count * 1000:.2f} ms each")


if __name__ == "__main__":
    main()
