"""What a compiled job hands to execve and to the Kubernetes API when it starts: the largest pod template and pod
environment value, the host lists job.sbatch exports, and the environment the agent gives each role's first process.

Used by bench_compile.py (printed for every size of the sweep) and tests/test_scale_start.py (the bounds at 8,192
nodes). Linux refuses execve (E2BIG) when one NAME=value passes 128 KiB or argv and the environment together pass a
quarter of the stack limit (never less than 128 KiB); etcd keeps every pod's spec, and an object of at most 1.5 MiB."""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from areal_compiler.agent.contract import address_lists, fork_env, worker_env
from areal_compiler.agent.lists import place_lists

EXEC_STRING = 128 * 1024  # Linux's MAX_ARG_STRLEN: the most one NAME=value may hold
POD_TEMPLATE = 16 * 1024  # the most one pod template may hold here (JSON): etcd keeps it in every pod of its Job
INLINE = re.compile(r'^(AREAL_\w+)="([^"]*)"$', re.M)  # job.sbatch: a host list set in the script, then exported


def addresses(nodes: int) -> list[str]:
    """Node addresses as long as a large cluster's (about 50 bytes): logical node n's."""
    return [f"node-{n:05d}.rack-{n // 32:03d}.gpu-cluster.example.internal" for n in range(nodes)]


def pod_templates(folder: Path) -> list[dict]:
    docs = yaml.safe_load_all((folder / "jobset.yaml").read_text(encoding="utf-8"))
    return [job["template"]["spec"]["template"] for doc in docs for job in doc["spec"]["replicatedJobs"]]


def kubernetes(folder: Path) -> dict[str, int]:
    """The largest pod template (compact JSON, as the API server stores it) and the longest env value in any."""
    templates = pod_templates(folder)
    values = [e.get("value", "") for t in templates for c in t["spec"]["containers"] for e in c.get("env", [])]
    return {"pod template": max(len(json.dumps(t, separators=(",", ":"))) for t in templates),
            "pod env value": max(map(len, values)), "jobset.yaml": (folder / "jobset.yaml").stat().st_size}


def slurm(folder: Path) -> dict[str, int]:
    """How many node names the longest host list job.sbatch exports itself holds (each at most 255 bytes); the
    longer lists go in files."""
    text = (folder / "job.sbatch").read_text(encoding="utf-8")
    inline = [value.count("${node_name[") for _, value in INLINE.findall(text)]
    if "\nexport AREAL_NODE_HOSTS\n" in text:  # every logical node's address
        inline.append(text.count("\naddrs+=("))
    return {"names in one exported list": max(inline, default=0), "lists in files": text.count("_FILE=\"$RUN_DIR/lists/")}


def processes(plan: dict, hosts: list[str], lists_dir: Path) -> dict[str, dict[str, str]]:
    """The variables the agent sets (the contract, then the lists' rule, as supervisor.py builds them) for the first
    worker of every role and the first forked process of every forked role, by ROLE/INDEX."""
    out: dict[str, dict[str, str]] = {}
    seen: set[str] = set()
    for worker in plan["workers"]:
        forks = [f for f in worker["forks"] if f["role"] not in seen]
        if worker["role"] in seen and not forks:
            continue
        env = worker_env(plan, worker, hosts)  # linear in the workers: once per role
        lists = address_lists(env, hosts)
        if worker["role"] not in seen:
            seen.add(worker["role"])
            out[f"{worker['role']}/{worker['index']}"] = place_lists(dict(env), lists, str(lists_dir))
        for fork in forks:
            seen.add(fork["role"])
            own, unset = fork_env(plan, worker, fork["role"], fork["index"], env, hosts)
            inherited = {k: v for k, v in env.items() if k not in unset}
            out[f"{fork['role']}/{fork['index']}"] = place_lists({**inherited, **own}, lists, str(lists_dir))
    return out


def agent(folder: Path, lists_dir: Path) -> dict[str, int]:
    """The longest variable and the largest environment (NAME=value bytes) among those processes."""
    plan = json.loads((folder / "plan.json").read_bytes())
    envs = processes(plan, addresses(plan["nodes"]), lists_dir)
    sizes = [[len(k) + len(v) + 2 for k, v in env.items()] for env in envs.values()]
    return {"worker variable": max(max(s) for s in sizes), "worker environment": max(map(sum, sizes))}


def measure(out: Path, lists_dir: Path) -> dict[str, int]:
    """Every figure of a folder compiled for slurm, kubernetes and ray (OUT/<target>)."""
    return {**kubernetes(out / "kubernetes"), **slurm(out / "slurm"), **agent(out / "slurm", lists_dir)}


def report(outs: dict[int, Path], lists_dir: Path) -> None:
    print("\n## what a job hands to execve and Kubernetes at start (bytes; node addresses of ~50 bytes each)\n")
    figures = {nodes: measure(out, lists_dir) for nodes, out in sorted(outs.items())}
    names = list(next(iter(figures.values())))
    print(f"{'nodes':>5} " + " ".join(f"{n:>{max(len(n), 8)}}" for n in names))
    for nodes, row in figures.items():
        print(f"{nodes:>5} " + " ".join(f"{row[n]:>{max(len(n), 8)}}" for n in names))
    print(f"\nbounds: one variable < {EXEC_STRING} (Linux), a pod template <= {POD_TEMPLATE}, an exported host list "
          "<= 64 names")
