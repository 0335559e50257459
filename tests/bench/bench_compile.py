"""Benchmark of `areal compile`: cold CPU against baselines in interleaved pairs, in-process throughput, a scale
sweep with every file's growth and what each size hands to execve and Kubernetes at start (start_sizes.py), and the
frontier (8,192 nodes: at most 2 s CPU and 300 MiB, cold).

Run by hand (`python tests/bench/bench_compile.py [--quick]`) for docs/performance.md's numbers; prints tables,
asserts no speed.
TorchX 0.7.0 is the peer baseline when installed: $AREAL_BENCH_TORCHX or /tmp/areal-bench/torchx/bin/torchx."""
from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import start_sizes
from synthetic import FORKS_PER_NODE, WORKERS_PER_NODE, synthetic

ROOT = Path(__file__).resolve().parents[2]
# The examples every measured checkout has (docs/performance.md's were measured on them): the same set before and
# after, so throughput pairs compare like with like; examples added later are not measured.
EXAMPLES = ("ascend-npu", "cpu-dev", "demo-cpu", "hybrid-moe", "ppo-critic", "rollout-proxy",
            "single-node-colocated-ref", "two-node-decoupled")
TWO_NODE = ROOT / "examples" / "two-node-decoupled.yaml"
TORCHX = Path(os.environ.get("AREAL_BENCH_TORCHX", "/tmp/areal-bench/torchx/bin/torchx"))
TORCHX_HOWTO = ("python3 -m venv /tmp/areal-bench/torchx && /tmp/areal-bench/torchx/bin/pip install torchx==0.7.0 "
                "(or point AREAL_BENCH_TORCHX at a torchx executable)")
PY = sys.executable
AREAL = [PY, "-m", "areal_compiler"]


def run_child(argv: list[str], cwd: str | None = None, ok: int = 0) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, peak RSS in KiB) of one fresh process and the children it waited for; its exit
    status must be OK (`areal diff` exits 1 when it finds changes)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        child = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        if child.returncode != ok:
            err.seek(0)
            raise SystemExit(f"benchmark command failed ({child.returncode}): {' '.join(argv)}\n"
                             f"{err.read().decode(errors='replace')[-2000:]}")
    return usage.ru_utime + usage.ru_stime, wall, usage.ru_maxrss


def interleaved(commands: dict[str, list[str]], repeat: int, cwd: str | None = None) -> dict[str, list[float]]:
    """CPU seconds of every command, run in rounds (one run of each per round, order rotated each round), so a
    slow spell of the machine hits every command alike and each round is a fair pair."""
    names = list(commands)
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for i in range(repeat):
        for name in names[i % len(names):] + names[:i % len(names)]:
            cpu[name].append(run_child(commands[name], cwd, ok=1 if name == DIFF else 0)[0])
    return cpu


def paired_ratio(cpu: dict[str, list[float]], name: str, base: str) -> float:
    """Median of the per-round ratios name/base."""
    return statistics.median(a / b for a, b in zip(cpu[name], cpu[base]))


FLOOR = "import floor: click, pydantic_core, yaml"
COMPILE = "areal compile two-node-decoupled"
BEFORE = "before: areal compile two-node-decoupled"
DIFF = "areal diff two versions of two-node-decoupled"


def _changed(work: str) -> str:
    """The two-node example with its rollout's backend reshaped (workers, devices, placement, every target's asks
    and ports change): the second version `areal diff` compares."""
    changed = Path(work, "two-node-changed.yaml")
    changed.write_text(TWO_NODE.read_text().replace('"sglang:d4t2"', '"sglang:d8t1"'))
    return str(changed)


def cold(repeat: int, work: str, before: Path | None) -> None:
    """Fresh processes in interleaved rounds; with BEFORE (an older checkout with its own .venv), its compile of the
    same file runs in every round too."""
    commands = {
        "python -c pass": [PY, "-c", "pass"],
        FLOOR: [PY, "-c", "import click, pydantic_core, yaml"],
        "areal --help": [*AREAL, "--help"],
        "areal validate two-node-decoupled": [*AREAL, "validate", str(TWO_NODE)],
        COMPILE: [*AREAL, "compile", str(TWO_NODE), "--out", f"{work}/cold"],
        DIFF: [*AREAL, "diff", str(TWO_NODE), _changed(work)],
    }
    if before is not None:
        commands[BEFORE] = [str(before / ".venv" / "bin" / "python"), "-m", "areal_compiler", "compile",
                            str(TWO_NODE), "--out", f"{work}/cold-before"]
    torchx = TORCHX.is_file()
    if torchx:
        Path(work, "train.py").write_text("print('hello')\n")
        commands["torchx 0.7.0 slurm dry-run dist.ddp -j 2x8"] = [
            str(TORCHX), "run", "--dryrun", "--scheduler", "slurm", "dist.ddp", "-j", "2x8", "--script", "train.py"]
    cpu = interleaved(commands, repeat, cwd=work)
    print(f"## cold start: CPU (user+sys) of a fresh process, {repeat} interleaved rounds\n")
    print(f"{'command':<46} {'median':>9} {'min':>9}  paired ratios (median of per-round ratios)")
    for name, times in cpu.items():
        ratios = []
        if name.startswith("areal"):
            ratios.append(f"{paired_ratio(cpu, name, FLOOR):.2f}x import floor")
        if name in (COMPILE, BEFORE) and torchx:
            ratios.append(f"{paired_ratio(cpu, name, 'torchx 0.7.0 slurm dry-run dist.ddp -j 2x8'):.2f}x torchx")
        if name == COMPILE and before is not None:
            ratios.append(f"{paired_ratio(cpu, name, BEFORE):.2f}x before")
        if name == DIFF:  # the target: at most two cold compiles
            ratios.append(f"{paired_ratio(cpu, name, COMPILE):.2f}x areal compile")
        print(f"{name:<46} {statistics.median(times) * 1000:7.1f}ms {min(times) * 1000:7.1f}ms  {', '.join(ratios)}")
    if not torchx:
        print(f"\nTorchX baseline absent ({TORCHX} not found); to include it: {TORCHX_HOWTO}")


THROUGHPUT = """
import sys, time
from areal_compiler.pipeline import compile_file
rounds, targets, examples = int(sys.argv[1]), tuple(sys.argv[2].split(",")), sys.argv[3:]
compile_file(str(examples[0]), targets)  # warm: imports, the agent bundle, the sbatch template
start = time.perf_counter()
for _ in range(rounds):
    for example in examples:
        assert compile_file(str(example), targets).ok, example
print(rounds * len(examples) / (time.perf_counter() - start))
"""
# The targets a checkout has: names() today; older checkouts (before the target registry) listed TARGETS.
TARGET_NAMES = "from areal_compiler import targets as t; print(*(t.names() if hasattr(t, 'names') else t.TARGETS))"


def target_names(python: str) -> list[str]:
    return subprocess.run([python, "-c", TARGET_NAMES], capture_output=True, text=True, check=True).stdout.split()


def throughput(rounds: int, before: Path | None) -> None:
    """Compiles per second of every example in one process, in chunks of ROUNDS, for every target; with BEFORE (an
    older checkout with its own .venv), for the targets both have, its chunks alternate with ours and the ratio is
    per pair of chunks."""
    checkouts = {"this checkout": (PY, ROOT)}
    if before is not None:
        checkouts["before: " + str(before)] = (str(before / ".venv" / "bin" / "python"), before)
    known = [target_names(python) for python, _ in checkouts.values()]
    targets = [t for t in known[0] if all(t in k for k in known)]
    rates: dict[str, list[float]] = {name: [] for name in checkouts}
    for _ in range(5):
        for name, (python, checkout) in checkouts.items():
            argv = [python, "-c", THROUGHPUT, str(rounds), ",".join(targets),
                    *(str(checkout / "examples" / f"{name}.yaml") for name in EXAMPLES)]
            rates[name].append(float(subprocess.run(argv, capture_output=True, text=True, check=True).stdout))
    print(f"\n## in-process: {len(EXAMPLES)} examples x {rounds}, targets {','.join(targets)}, "
          "5 interleaved chunks\n")
    for name, values in rates.items():
        ratio = ""
        if name != "this checkout":
            ratio = f"  (this checkout: {paired_ratio(rates, 'this checkout', name):.2f}x)"
        print(f"{name:<46} {statistics.median(values):7.1f} compiles/s{ratio}")


def _growth(now: float, before: float | None) -> str:
    return f"{now / before:5.2f}x" if before else "    -"


CLUSTER_TARGETS = "slurm,kubernetes,ray"


def compile_cold(spec: Path, out: Path) -> tuple[float, int, str]:
    """(CPU seconds, peak RSS KiB, targets) of a fresh `areal compile --target all`; when the local target cannot
    hold every logical node on one host (their ports do not fit, a located error), of the cluster targets alone."""
    argv = [*AREAL, "compile", str(spec), "--out", str(out)]
    fits = subprocess.run([*AREAL, "validate", str(spec), "--target", "local"], capture_output=True).returncode == 0
    targets = "all" if fits else CLUSTER_TARGETS
    cpu, _, rss = run_child(argv + ["--target", targets])
    return cpu, rss, "all four" if fits else "all but local"


def sweep(sizes: list[int], work: str) -> dict[str, dict[str, int]]:
    print("\n## scale sweep: cold `areal compile` of the synthetic experiment (tests/bench/synthetic.py: on average "
          f"{WORKERS_PER_NODE} workers + {FORKS_PER_NODE} forks per node, a driver), every target that can hold it")
    print("growth = this size / the previous size (4x nodes: ~4x is linear, ~16x is quadratic)\n")
    print(f"{'nodes':>5} {'CPU':>8} {'growth':>6} {'peak RSS':>9} {'growth':>6}  {'targets':<13} torchx -j Nx8  "
          "largest files (growth)")
    previous: dict[str, float] = {}
    files: dict[str, dict[str, int]] = {}  # node count -> file -> bytes
    for nodes in sizes:
        spec = Path(work, f"scale-{nodes}.yaml")
        spec.write_text(synthetic(nodes))
        out = Path(work, f"scale-{nodes}")
        cpu, rss, targets = compile_cold(spec, out)
        torchx = "absent"
        if TORCHX.is_file():
            t_cpu = run_child([str(TORCHX), "run", "--dryrun", "--scheduler", "slurm", "dist.ddp",
                               "-j", f"{nodes}x8", "--script", "train.py"], cwd=work)[0]
            torchx = f"{t_cpu:6.2f} s"
        sizes_now = {str(p.relative_to(out)): p.stat().st_size for p in out.rglob("*") if p.is_file()}
        files[str(nodes)] = sizes_now
        largest = sorted((s, rel) for rel, s in sizes_now.items() if not rel.endswith("agent.pyz"))[-4:]
        shown = ", ".join(f"{rel} {s / 1024:.0f} KiB ({_growth(s, previous.get(rel)).strip()})"
                          for s, rel in reversed(largest))
        print(f"{nodes:>5} {cpu:7.2f}s {_growth(cpu, previous.get('cpu'))} {rss / 1024:7.0f}Mi "
              f"{_growth(rss, previous.get('rss'))}  {targets:<13} {torchx:>13}  {shown}")
        previous = {"cpu": cpu, "rss": rss, **sizes_now}
    return files


def growth(files: dict[str, dict[str, int]]) -> None:
    """Every file's size at the largest node count that has it over its size at the smallest: linear growth keeps
    the ratio near the ratio of node counts (the issue's bound: x140 for x128, 64 -> 8,192 nodes)."""
    sizes = sorted(int(n) for n in files)
    print(f"\n## file growth, {sizes[0]} nodes -> the largest size that has the file (bound: 1.09 x the node ratio)\n")
    print(f"{'file':<34} {'bytes':>12} {'bytes':>12} {'nodes':>11} {'growth':>8} {'per node':>9}")
    for rel in sorted(files[str(sizes[0])]):
        last = max(n for n in sizes if rel in files[str(n)])
        small, large = files[str(sizes[0])][rel], files[str(last)][rel]
        ratio = large / small
        verdict = "" if ratio <= 1.09 * last / sizes[0] else "  OVER"
        print(f"{rel:<34} {small:>12} {large:>12} {sizes[0]:>5}->{last:<5} {ratio:7.1f}x "
              f"{ratio / (last / sizes[0]):8.2f}x{verdict}")


def frontier(nodes: int, rounds: int, work: str) -> None:
    """The frontier target: NODES nodes compile cold for every target that can hold them in at most 2 s CPU and
    300 MiB; rounds interleaved with the import floor, whose ratio is steadier than the seconds on a busy machine."""
    spec = Path(work, f"frontier-{nodes}.yaml")
    spec.write_text(synthetic(nodes))
    cpus, rsss, floors = [], [], []
    for i in range(rounds):
        pair = [("floor", [PY, "-c", "import click, pydantic_core, yaml"]), ("compile", None)]
        for name, argv in pair if i % 2 else reversed(pair):
            if argv is None:
                cpu, rss, targets = compile_cold(spec, Path(work, "frontier-out"))
                cpus.append(cpu)
                rsss.append(rss)
            else:
                floors.append(run_child(argv)[0])
    ratio = statistics.median(c / f for c, f in zip(cpus, floors))
    print(f"\n## frontier: {nodes} nodes ({nodes * 8} devices), cold compile for {targets}, {rounds} interleaved "
          "rounds with the import floor\n")
    print(f"CPU median {statistics.median(cpus):.2f} s (min {min(cpus):.2f}, max {max(cpus):.2f}; target <= 2 s), "
          f"peak RSS max {max(rsss) / 1024:.0f} MiB (target <= 300), {ratio:.1f}x the import floor "
          f"({statistics.median(floors) * 1000:.0f} ms)")


def bytecode(checkout: Path) -> None:
    """Compile the checkout's modules as an install does: with PYTHONDONTWRITEBYTECODE set (some sandboxes and CI
    set it), an editable install would otherwise compile every module from source in every cold run."""
    compileall.compile_dir(checkout / "compiler", quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds and small sizes (a smoke run)")
    parser.add_argument("--sizes", default=None, help="comma list of even node counts for the sweep")
    parser.add_argument("--frontier", type=int, default=8192, help="node count of the frontier rounds (8192)")
    parser.add_argument("--before", type=Path, default=None,
                        help="an older checkout with its own .venv (editable install) to compare cold compile and "
                             "throughput with")
    args = parser.parse_args()
    repeat, rounds = (2, 1) if args.quick else (15, 10)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [2, 4] if args.quick else \
        [64, 256, 1024, 2048, 4096, 8192]
    for checkout in [ROOT] + ([args.before] if args.before else []):
        bytecode(checkout)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {len(EXAMPLES)} examples\n")
    with tempfile.TemporaryDirectory(prefix="areal-bench-") as work:
        cold(repeat, work, args.before)
        throughput(rounds, args.before)
        growth(sweep(sizes, work))
        start_sizes.report({n: Path(work, f"scale-{n}") for n in sizes}, Path(work, "lists"))
        frontier(args.frontier if not args.quick else sizes[-1], 2 if args.quick else 7, work)


if __name__ == "__main__":
    main()
