"""Benchmark of the run half at scale: a local run of the CPU demo with many rollout servers, and `areal status` and
`ps` of a 1,024-node Slurm job read from its state files.

Run by hand (`python tests/bench/bench_run.py [--servers 128] [--nodes 1024] [--before CHECKOUT]`); prints wall
times against the issue's targets (running within 30 s of `areal start`, status under 0.5 s, stop within 10 s, no
process left; status and ps of 8,192 worker state files under 1 s), and the CPU every process of the run used to
get going, which a busy machine moves less than wall times. With --before (an older checkout with its own .venv)
its rounds alternate with this checkout's and each figure gets the median ratio of the pairs. Asserts nothing.

The Slurm job is a stand-in: its state files are generated on a fileroot here and `scontrol` is a stub on PATH that
says RUNNING (what grows with the job is reading and printing the state files, which is areal's; a real scontrol
answers in about the same time for any job)."""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from helpers import free_port_block  # noqa: E402

WORKERS_PER_NODE = 8  # of the 1,024-node job: 8,192 state files
RUN = "demo-cpu/trial0"
CPU = {"areal": 0.0}  # CPU seconds of the last `areal` command (areal() sets it)


def areal(env: dict, *args: str, timeout: float = 300) -> tuple[float, subprocess.CompletedProcess]:
    """Wall seconds and the result of one `areal` command, run by the checkout's python (env["BENCH_PYTHON"]);
    its CPU seconds (and its children's) are added to CPU["areal"]."""
    start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([env["BENCH_PYTHON"], "-m", "areal_compiler", *args], env=env, capture_output=True,
                         text=True, timeout=timeout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU["areal"] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return time.perf_counter() - start, out


def demo(work: Path, servers: int) -> Path:
    """examples/demo-cpu.yaml with SERVERS rollout servers (a proxy forked beside each) and a controller that keeps
    going until it is stopped."""
    text = (ROOT / "examples" / "demo-cpu.yaml").read_text(encoding="utf-8")
    text = text.replace("replicas: 2", f"replicas: {servers}").replace("--steps 5", "--steps 1000000") \
        .replace("python3 demo/", f"python3 {ROOT}/examples/demo/") \
        .replace("base_port: 31000", f"base_port: {free_port_block(3 * servers + 8, 21000, 32768)}")
    path = work / f"demo-{servers}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def run_processes(home: Path) -> dict[int, float]:
    """pid -> CPU seconds so far, of every live process of a run (all inherit AREAL_HOME: the runner, the agents,
    the workers and their forked processes)."""
    marker, tick, found = f"AREAL_HOME={home}\0".encode(), os.sysconf("SC_CLK_TCK"), {}
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                if marker not in Path(f"/proc/{pid}/environ").read_bytes():
                    continue
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] not in ("Z", "X"):
                found[int(pid)] = (int(fields[11]) + int(fields[12])) / tick
    return found


def local_round(work: Path, python: str, servers: int, probes: int) -> dict:
    """One start, status calls and stop of the demo by the checkout whose python is PYTHON: its figures."""
    home = work / "home"
    env = {**os.environ, "AREAL_HOME": str(home), "BENCH_PYTHON": python}
    took, started = areal(env, "start", str(demo(work, servers)), "--timeout", "300")
    if started.returncode != 0:
        raise SystemExit(f"areal start failed: {started.stderr[-3000:]}")
    cpu = sum(run_processes(home).values())
    state = json.loads(areal(env, "status", RUN, "-o", "json")[1].stdout)["data"]
    walls, cpus = [], []
    for _ in range(probes):
        wall, out = areal(env, "status", RUN)
        if out.returncode not in (0, 1):
            raise SystemExit(f"areal status failed: {out.stderr[-2000:]}")
        walls.append(wall)
        cpus.append(CPU["areal"])
        time.sleep(0.3)
    running = set(run_processes(home))
    start = time.perf_counter()
    _, stopped = areal(env, "stop", RUN)
    said = time.perf_counter() - start
    while set(run_processes(home)) & running and time.perf_counter() - start < 60:
        time.sleep(0.05)
    gone, left = time.perf_counter() - start, run_processes(home)
    if left:
        areal(env, "stop", "--force", RUN)
    healthy = sum(w["status"] == "healthy" for w in state["workers"])
    return {"start": took, "cpu": cpu, "status": statistics.median(walls), "status_max": max(walls),
            "status_cpu": statistics.median(cpus),
            "stop": said, "gone": gone, "left": len(left),
            "note": f"run {state['status']}, {healthy} of {len(state['workers'])} processes healthy; stop said "
                    f"{stopped.stdout.strip()!r}"}


LOCAL = [("start", "areal start -> every process ready: {start:.1f} s wall (target <= 30)"),
         ("cpu", "CPU of every process of the run until then: {cpu:.1f} s"),
         ("status", "areal status during the run: p50 {status:.2f} s, max {status_max:.2f} s wall (target < 0.5); "
                    "{status_cpu:.2f} s CPU"),
         ("gone", "areal stop: returned after {stop:.1f} s, every process gone after {gone:.1f} s (target <= 10), "
                  "{left:.0f} left")]


SCONTROL = """#!/bin/sh
echo "JobId=$4 HetJobId=$4 HetJobOffset=0 JobName=scale-1024_trial0:rollout JobState=RUNNING Reason=None \
ExitCode=0:0 Restarts=0 NodeList=node-[0000-1023]"
"""


def cluster_job(work: Path, nodes: int) -> dict:
    """A Slurm run record and WORKERS_PER_NODE state files per node on a generated fileroot, a stub scontrol; the
    environment to run areal in."""
    home, stubs = work / "cluster-home", work / "stubs"
    run_dir = work / "fileroot" / "scale" / "trial0" / "job-4242"
    (run_dir / "state").mkdir(parents=True)
    stubs.mkdir()
    (stubs / "scontrol").write_text(SCONTROL)
    (stubs / "scontrol").chmod(0o755)
    now = time.time()
    for node in range(nodes):
        for slot in range(WORKERS_PER_NODE):
            index = node * WORKERS_PER_NODE + slot
            (run_dir / "state" / f"rollout.{index}.json").write_text(json.dumps({
                "role": "rollout", "index": index, "kind": "worker", "status": "running", "ready": True,
                "ready_at": "2026-01-01T00:00:00+00:00", "pid": {"agent": 1000 + slot, "child": 2000 + slot},
                "hostname": f"node-{node:04d}", "started_at_epoch": now - 60, "last_heartbeat_epoch": now,
                "heartbeat_interval": 5.0, "hung_after": 3600.0, "exit_code": None, "finished_at": None,
                "restarts": 0, "worker_heartbeat": None}))
    record = home / "runs" / "scale" / "trial0.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"name": "scale/trial0", "target": "slurm", "target_dir": str(work / "compiled"),
                                  "run_dir": str(run_dir), "workdir": "", "created_at": "2026-01-01T00:00:00+00:00",
                                  "updated_at": "2026-01-01T00:00:00+00:00", "job": {"slurm_job_id": "4242"},
                                  "outcome": None, "exit_code": None}))
    return {**os.environ, "AREAL_HOME": str(home), "PATH": f"{stubs}{os.pathsep}{os.environ.get('PATH', '')}"}


CLUSTER = [("status", "areal status scale/trial0: p50 {status:.2f} s wall (target < 1), {status_cpu:.2f} s CPU, "
                      "{status_lines:.0f} lines"),
           ("json", "areal status scale/trial0 -o json: p50 {json:.2f} s wall (target < 1), {json_cpu:.2f} s CPU"),
           ("ps", "areal ps: p50 {ps:.2f} s wall (target < 1), {ps_cpu:.2f} s CPU")]


def cluster_round(env: dict, python: str, probes: int) -> dict:
    env = {**env, "BENCH_PYTHON": python}
    out: dict = {"note": ""}
    for key, args in (("status", ["status", "scale/trial0"]), ("json", ["status", "scale/trial0", "-o", "json"]),
                      ("ps", ["ps"])):
        walls, cpus = [], []
        for _ in range(probes):
            wall, done = areal(env, *args)
            if done.returncode not in (0, 1) or (key != "ps" and "4242" not in done.stdout):
                raise SystemExit(f"areal {' '.join(args)} failed: {done.stderr[-2000:]}")
            walls.append(wall)
            cpus.append(CPU["areal"])
        out[key], out[f"{key}_cpu"] = statistics.median(walls), statistics.median(cpus)
        out[f"{key}_lines"] = len(done.stdout.splitlines())
    return out


def report(title: str, rounds: dict[str, list[dict]], lines: list[tuple[str, str]]) -> None:
    """Each checkout's medians over its rounds, and this checkout's / the older one's, pair by pair."""
    print(f"\n## {title}\n")
    for checkout, results in rounds.items():
        middle = {key: statistics.median(r[key] for r in results) for key in results[0] if key != "note"}
        print(f"{checkout} ({len(results)} round(s), medians; last round: {results[-1]['note']})")
        for _, text in lines:
            print("  " + text.format(**middle))
    if len(rounds) == 2:
        ours, older = rounds.values()
        print("this checkout / the older one, median of the per-round ratios: " + ", ".join(
            f"{key} {statistics.median(a[key] / b[key] for a, b in zip(ours, older) if b[key]):.2f}x"
            for key, _ in lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=128, help="rollout servers of the local run (128)")
    parser.add_argument("--nodes", type=int, default=1024, help="nodes of the Slurm job whose state is read (1024)")
    parser.add_argument("--probes", type=int, default=5, help="calls of each timed command per round (5)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of each checkout (1)")
    parser.add_argument("--before", type=Path, default=None, help="an older checkout with its own .venv")
    args = parser.parse_args()
    pythons = {"this checkout": sys.executable}
    if args.before is not None:
        pythons[f"before: {args.before}"] = str(args.before / ".venv" / "bin" / "python")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    local: dict[str, list[dict]] = {name: [] for name in pythons}
    cluster: dict[str, list[dict]] = {name: [] for name in pythons}
    with tempfile.TemporaryDirectory(prefix="areal-bench-run-") as name:
        work = Path(name)
        env = cluster_job(work, args.nodes)
        for i in range(args.rounds):
            for checkout in list(pythons)[i % len(pythons):] + list(pythons)[:i % len(pythons)]:
                local[checkout].append(local_round(work, pythons[checkout], args.servers, args.probes))
                cluster[checkout].append(cluster_round(env, pythons[checkout], args.probes))
    report(f"a local run of the CPU demo: {args.servers} rollout servers, {args.servers} forked proxies, a trainer "
           f"server and the controller ({2 * args.servers + 2} processes under {args.servers + 2} agents)",
           local, LOCAL)
    report(f"a {args.nodes}-node Slurm job: {args.nodes * WORKERS_PER_NODE} worker state files on the fileroot "
           "(generated; scontrol a stub saying RUNNING)", cluster, CLUSTER)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
