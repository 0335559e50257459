"""Benchmark of the runtime agent: fork latency, gate decisions/s, the agent's own CPU and memory when idle.

Run by hand: `python tests/bench/bench_agent.py [--seconds 60] [--before CHECKOUT]`; prints numbers, asserts
nothing (not collected). With --before (an older checkout with its own .venv), fork latency is measured for both in
alternating chunks and their ratio printed."""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agent"))

from agent_helpers import PY, TOKEN, agent_url, free_ports, make_plan, script, start_agent, stop_agent, wait_until, worker  # noqa
from areal_compiler.agent.client import AgentClient, AgentError, GateClient  # noqa: E402
from areal_compiler.agent.forks import fork_workers  # noqa: E402
from areal_compiler.agent.gate import StalenessGate  # noqa: E402

SLEEP = script("import time; time.sleep(3600)")
# what the agent forks: listens on the port it is given (`--port P`, appended by the fork) and sleeps
LISTENER = [PY, "-c", "import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[2]))); "
            "s.listen(); time.sleep(3600)"]


def _up(url: str) -> bool:
    client = AgentClient(url, TOKEN)
    try:
        return bool(client.health())
    except AgentError:
        return False
    finally:
        client.close()


def _percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


def direct_start(ports: list) -> float:
    """The floor under fork latency: seconds from starting the same children directly (one Popen each, no agent,
    no HTTP) to every one listening on its port (polled every 2 ms)."""
    started = time.perf_counter()
    children = [subprocess.Popen(LISTENER + ["--port", str(port)]) for port in ports]
    try:
        for port in ports:
            while not _listening(port):
                time.sleep(0.002)
        return time.perf_counter() - started
    finally:
        for child in children:
            child.kill()
            child.wait()


def fork_latencies(tmp: Path, workers: int, rounds: int) -> dict:
    """Seconds from `fork_workers` (the `agent.pyz fork` client) being called to every forked child listening on
    its port, for WORKERS agents, ROUNDS times (each round's children killed before the next); each round is
    followed by the floor (`direct_start` of as many children) so both see the machine alike."""
    from areal_compiler.agent.plan import PLAN_VERSION  # of the checkout whose agent runs

    plan_path = make_plan(tmp / ("fork%d.json" % workers), [worker("actor", i, SLEEP) for i in range(workers)])
    data = json.loads(plan_path.read_text())  # the role forked on request (not at start-up), with one port
    data["roles"]["proxy"] = dict(data["roles"]["actor"], argv=LISTENER, port_count=1, readiness="none")
    data["plan_version"] = PLAN_VERSION
    plan_path.write_text(json.dumps(data))
    procs = [start_agent(plan_path, "actor/%d" % i, tmp / "run") for i in range(workers)]
    try:
        for i in range(workers):
            wait_until(lambda: _up(agent_url(plan_path, "actor", i)), what="agent up")
        clients = [AgentClient(agent_url(plan_path, "actor", i), TOKEN) for i in range(workers)]
        latencies: dict = {"fork": [], "direct": []}
        for _ in range(rounds):
            started = time.perf_counter()
            fork_workers(data, "proxy", "actor", TOKEN)
            latencies["fork"].append(time.perf_counter() - started)
            for i, client in enumerate(clients):
                client.kill_forked_worker("proxy", i)
            latencies["direct"].append(direct_start(free_ports(workers)))
        for client in clients:
            client.close()
    finally:
        for proc in procs:
            stop_agent(proc)
    return latencies


def bench_fork(tmp: Path, workers: int, rounds: int, before: Optional[Path]) -> list:
    """Fork latency of this checkout and, with BEFORE, of an older one, in alternating chunks of rounds (each
    chunk a fresh process of that checkout's python running fork_latencies)."""
    pythons = {"this checkout": sys.executable}
    if before is not None:
        pythons["before"] = str(before / ".venv" / "bin" / "python")
    found: dict = {name: [] for name in pythons}
    floor: list = []
    chunks = 4
    for i in range(chunks):
        for name in list(pythons)[i % len(pythons):] + list(pythons)[:i % len(pythons)]:
            out = subprocess.run([pythons[name], __file__, "--fork-only", str(workers), str(-(-rounds // chunks))],
                                 capture_output=True, text=True, check=True, cwd=str(tmp))
            chunk = json.loads(out.stdout)
            found[name] += chunk["fork"] if isinstance(chunk, dict) else chunk  # an older checkout: a list
            floor += chunk["direct"] if isinstance(chunk, dict) else []
    lines = ["fork latency, request to every child listening, %d worker(s), %s: p50 %.3fs  p99 %.3fs (%d rounds)"
             % (workers, name, statistics.median(v), _percentile(v, 0.99), len(v)) for name, v in found.items()]
    lines.append("  floor: the same %d children started directly (no agent, no HTTP), interleaved: p50 %.3fs; "
                 "fork / floor, p50: %.2fx" % (workers, statistics.median(floor),
                                              statistics.median(found["this checkout"]) / statistics.median(floor)))
    if before is not None:
        lines.append("  this checkout / before, p50: %.2fx"
                     % (statistics.median(found["this checkout"]) / statistics.median(found["before"])))
    return lines


def _decisions(make_client, seconds: float, threads: int = 8) -> float:
    counts = [0] * threads
    stop = time.monotonic() + seconds

    def loop(slot: int) -> None:
        gate = make_client()
        n = 0
        while time.monotonic() < stop:
            if gate.try_submit():
                gate.accept()
            n += 1
        counts[slot] = n
        if hasattr(gate, "close"):
            gate.close()
    pool = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(counts) / seconds


def bench_gate(tmp: Path, seconds: float) -> list:
    shared = StalenessGate(None, 64, 256)  # eval-style: every try_submit is granted, then accepted
    lines = ["gate decisions/s in-process, 8 threads: %.0f" % _decisions(lambda: shared, seconds)]
    gate = {"role": "w", "index": 0, "max_head_offpolicyness": None, "max_concurrent_rollouts": 256,
            "consumer_batch_size": 64, "queue_size": 4096}
    plan = make_plan(tmp / "gate.json", [worker("w", 0, SLEEP)], gate=gate)
    proc = start_agent(plan, "w/0", tmp / "gate-run")
    try:
        url = agent_url(plan, "w", 0)
        wait_until(lambda: _up(url), what="agent up")
        rate = _decisions(lambda: GateClient(url, TOKEN), seconds)
        lines.append("gate decisions/s over HTTP, 8 keep-alive clients (each decision = submit + accept): %.0f" % rate)
    finally:
        stop_agent(proc)
    return lines


def bench_idle(tmp: Path, seconds: float) -> str:
    plan = make_plan(tmp / "idle.json", [worker("w", 0, ["sleep", "3600"])],
                     runtime={"heartbeat_interval": 5.0, "hung_after": 30.0})
    proc = start_agent(plan, "w/0", tmp / "idle-run")
    try:
        wait_until(lambda: _up(agent_url(plan, "w", 0)), what="agent up")
        time.sleep(seconds)
        with open("/proc/%d/stat" % proc.pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        with open("/proc/%d/status" % proc.pid) as handle:
            hwm = next(line.split()[1] for line in handle if line.startswith("VmHWM"))
    finally:
        stop_agent(proc)
    return "agent supervising idle `sleep` for %.0fs (heartbeat 5s): CPU %.2fs total, max RSS %.1f MiB" % (
        seconds, cpu, int(hwm) / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="idle supervision time (60)")
    parser.add_argument("--gate-seconds", type=float, default=3.0)
    parser.add_argument("--before", type=Path, default=None,
                        help="an older checkout with its own .venv: its fork latency is measured in turn")
    parser.add_argument("--fork-only", nargs=2, type=int, metavar=("WORKERS", "ROUNDS"),
                        help=argparse.SUPPRESS)  # one chunk of bench_fork, in the checkout's own process
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        if args.fork_only:
            print(json.dumps(fork_latencies(tmp, *args.fork_only)))
            return
        for workers, rounds in ((1, 20), (8, 20)):
            for line in bench_fork(tmp, workers, rounds, args.before):
                print(line)
        for line in bench_gate(tmp, args.gate_seconds):
            print(line)
        print(bench_idle(tmp, args.seconds))


if __name__ == "__main__":
    main()
