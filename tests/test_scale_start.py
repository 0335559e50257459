"""A job of the format's largest size starts: the real agent.pyz execs a worker and its forked child of an 8,192-node
plan whose address lists are far past what Linux lets one environment string hold, and both see every list whole
through the contract (a long list in the file <NAME>_FILE names). At that size no pod template, pod environment
value, host list job.sbatch exports or variable the agent sets grows with the job (tests/bench/start_sizes.py)."""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, free_port_block
from areal_compiler.agent.lists import LIST_LIMIT, LISTS_BUDGET
from areal_compiler.pipeline import compile_file

sys.path.insert(0, str(ROOT / "tests" / "bench"))
import start_sizes  # noqa: E402  (the benchmark's figures)
from synthetic import synthetic  # noqa: E402  (the scale benchmark's experiment)

NODES = 8192
# What every process of the job runs: it writes the lists it finds through the contract, then (the worker) waits for
# its forked child's report and ends, or (the child) waits to be stopped.
REPORT = r"""
import json, os, sys, time
lists = {}
for key in os.environ:
    name = key[:-len("_FILE")] if key.endswith("_FILE") else key
    if name.startswith("AREAL_ADDRS_") or name == "AREAL_NODE_HOSTS":
        if name in os.environ:
            lists[name] = os.environ[name]
        else:
            with open(os.environ[name + "_FILE"], encoding="utf-8") as handle:
                lists[name] = handle.read()
me = "%s.%s" % (os.environ["AREAL_ROLE"], os.environ["AREAL_WORKER_INDEX"])
with open(os.path.join(os.environ["REPORT_DIR"], me + ".json"), "w", encoding="utf-8") as out:
    json.dump({"lists": lists, "environ": dict(os.environ)}, out)
other = os.path.join(os.environ["REPORT_DIR"], "proxy.0.json")
deadline = time.time() + 60
while os.environ["AREAL_ROLE"] == "proxy" or (not os.path.exists(other) and time.time() < deadline):
    time.sleep(0.05)
"""


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """The synthetic 8,192-node experiment, every process running REPORT, compiled for every cluster target."""
    work = tmp_path_factory.mktemp("scale-start")
    program, secret = work / "report.py", work / "wandb"
    program.write_text(REPORT, encoding="utf-8")
    secret.write_text("not-a-key\n", encoding="utf-8")
    command = json.dumps(f"{sys.executable} {program}")
    text = synthetic(NODES)
    for cmd in ("python3 -m areal.infra.rpc.rpc_server --log-level info",
                "python3 -m areal.experimental.openai.proxy.proxy_rollout_server",
                "python3 train.py --config gsm8k_grpo.yaml"):
        text = text.replace(f"cmd: {cmd}", f"cmd: {command}")
    text = text.replace("/shared/secrets/wandb_api_key", str(secret)).replace(
        "hung_after: 60}", f"hung_after: 60, base_port: {free_port_block(64, 12000, 30000)}}}")
    (work / "exp.yaml").write_text(text, encoding="utf-8")
    result = compile_file(str(work / "exp.yaml"), ("slurm", "kubernetes", "ray"))
    assert result.ok, [d.message for d in result.diagnostics]
    for rel, artifact in result.artifacts.items():
        (work / "out" / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / "out" / rel).write_bytes(artifact.content)
    return work


def expected_lists(plan: dict, hosts: list[str]) -> dict[str, str]:
    """Every list as the README's contract states it, built here from plan.json: each role's host:port of its
    processes in index order (forked ones on their worker's node), and every node's address."""
    found: dict[str, list] = {}
    for w in plan["workers"]:
        found.setdefault(w["role"], []).append((w["index"], w["node"], w["ports"]))
        for fork in w["forks"]:
            found.setdefault(fork["role"], []).append((fork["index"], w["node"], fork["ports"]))
    out = {f"AREAL_ADDRS_{role.upper()}": ",".join(f"{hosts[node]}:{ports[0]}" for _, node, ports in sorted(procs)
                                                   if ports) for role, procs in found.items()}
    return {**out, "AREAL_NODE_HOSTS": ",".join(hosts)}


def test_a_worker_and_its_forked_child_start_and_see_every_list_whole(compiled, tmp_path):
    plan = json.loads((compiled / "out" / "slurm" / "plan.json").read_bytes())
    hosts = ["127.0.0.1"] + start_sizes.addresses(NODES)[1:]  # node 0 (rollout/0 and its proxy) is this machine
    lists = expected_lists(plan, hosts)
    assert min(len(v) for v in lists.values() if v) > 128 * 1024  # each list alone is past MAX_ARG_STRLEN:
    with pytest.raises(OSError) as refused:  # as the agent's one variable each, no program would start
        subprocess.run([sys.executable, "-c", "pass"], env={"AREAL_NODE_HOSTS": lists["AREAL_NODE_HOSTS"]})
    assert refused.value.errno == errno.E2BIG
    (tmp_path / "node-hosts").write_text(lists["AREAL_NODE_HOSTS"], encoding="utf-8")  # as job.sbatch writes it
    (tmp_path / "reports").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AREAL_", "SLURM_"))}
    env.update(AREAL_AGENT_TOKEN="scale-start-token", AREAL_NODE_HOSTS_FILE=str(tmp_path / "node-hosts"),
               REPORT_DIR=str(tmp_path / "reports"))
    folder = compiled / "out" / "slurm"
    agent = subprocess.run([sys.executable, "-I", str(folder / "agent.pyz"), "supervise", "--plan",
                            str(folder / "plan.json"), "--worker", "rollout/0", "--run-dir", str(tmp_path / "run")],
                           env=env, capture_output=True, text=True, timeout=240)
    assert agent.returncode == 0, agent.stderr
    for name in ("rollout.0", "proxy.0"):
        report = json.loads((tmp_path / "reports" / f"{name}.json").read_text(encoding="utf-8"))
        assert report["lists"] == lists, name  # every list, whole, through the contract
        environ = report["environ"]
        long = {list_name for list_name, value in lists.items() if value}  # the driver's has no address
        assert not long & environ.keys() and environ["AREAL_ADDRS_DRIVER"] == "", name  # in files, their paths:
        assert all(environ[f"{list_name}_FILE"].startswith(str(tmp_path / "run" / "lists")) for list_name in long)
        assert max(len(k) + len(v) + 2 for k, v in environ.items()) <= max(LIST_LIMIT, max(
            len(k) + len(v) + 2 for k, v in env.items()))


def test_nothing_a_large_job_hands_to_execve_or_kubernetes_grows_with_it(compiled, tmp_path):
    figures = start_sizes.measure(compiled / "out", tmp_path / "lists")
    assert figures["pod template"] <= start_sizes.POD_TEMPLATE  # was 431 KB: every pod name in every pod's env
    assert figures["pod env value"] <= 128  # a file's path, never a list
    assert figures["names in one exported list"] <= 64  # job.sbatch: 64 x 255 bytes fit the agent's 16 KiB
    assert figures["lists in files"] == 3  # AREAL_NODE_HOSTS and both large steps' AREAL_SLURM_HOSTS_<ROLE>
    assert figures["worker variable"] <= LIST_LIMIT  # was 1.8 MB (AREAL_ADDRS_ACTOR)
    assert figures["worker environment"] <= LISTS_BUDGET  # what the agent adds, every role's first process
    kubernetes = compiled / "out" / "kubernetes"
    assert (kubernetes / "jobset.yaml").stat().st_size < 32 * 1024  # was 1.28 MB, near etcd's 1.5 MiB object
