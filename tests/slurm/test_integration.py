"""The Slurm target against the REAL two-node test cluster (tests/slurm/cluster.sh): compile, submit, wait, inspect.

Jobs that really run ask for 1 CPU and 1 GB per worker (the machine has two cores). The fileroot is the test's
tmp_path: every step can write it (the daemons run as root on this one machine)."""
from __future__ import annotations

import json
import re
import shlex
import time
from pathlib import Path

import pytest

from areal_compiler.agent.plan import on_this_host
from areal_compiler.pipeline import compile_file
from areal_compiler.runs import slurm as runs_slurm

pytestmark = pytest.mark.slurm

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
REPORT = Path(__file__).resolve().parent / "programs" / "report.py"
CAPACITY = {"nodes": 2, "cpus": 96, "mem_gb": 1500000 // 1024, "gpus": 8, "partitions": {None, "gpu"}}


def _experiment(tmp_path: Path, rollout_args: str = "", actor_args: str = "", slurm: str = "") -> Path:
    """16 GPUs over 2 nodes: rollout (2 x 4 GPUs) on one node, actor (8 x 1 GPU) on the other, and ref forked
    beside every actor worker on the actor's devices. Every process records itself with report.py."""
    out = tmp_path / "out"
    out.mkdir()
    cmd = f"python3 {shlex.quote(str(REPORT))}"
    spec = f"{{cpu: 1, mem: 1, env_vars: {{REPORT_OUT: {json.dumps(str(out))}}}}}"
    text = f"""\
experiment_name: slurm-it
trial_name: t0
compute: {{accelerator: GPU_8xH100, num_accelerators: 16}}
fileroot: {json.dumps(str(tmp_path / "root"))}
roles:
  rollout:
    backend: "sglang:d2t4"
    cmd: {json.dumps(f"{cmd} {rollout_args}".strip())}
    scheduling_spec: {spec}
  actor:
    backend: "fsdp:d8"
    cmd: {json.dumps(f"{cmd} --wait-for ref {actor_args}".strip())}
    scheduling_spec: {spec}
  ref:
    backend: "fsdp:d8"
    cmd: {json.dumps(cmd)}
    scheduling_strategy: {{type: colocation, target: actor}}
    scheduling_spec: {{cpu: 1, mem: 1}}
runtime: {{grace_period: 2}}
slurm: {{partition: gpu, time: "00:10:00"{slurm}}}
"""
    path = tmp_path / "exp.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _compile(path: Path, out: Path):
    result = compile_file(str(path), ("slurm",))
    assert result.ok, [str(d) for d in result.diagnostics]
    out.mkdir(parents=True, exist_ok=True)
    for name, artifact in result.artifacts.items():
        target = out / name.split("/", 1)[1]
        target.write_bytes(artifact.content)
        if artifact.executable:
            target.chmod(0o755)
    return result.plan, out


def _records(tmp_path: Path) -> dict:
    return {p.stem: json.loads(p.read_text()) for p in (tmp_path / "out").glob("*.json")}


def _batch_log(submitted: dict) -> str:
    return "\n".join(Path(p).read_text(errors="replace") for p in submitted["batch_logs"] if Path(p).is_file())


def test_job_completes_with_every_worker_where_planned(slurm_cluster, tmp_path):
    plan, target = _compile(_experiment(tmp_path), tmp_path / "slurm")
    submitted = runs_slurm.submit(target, env=slurm_cluster.env)
    state, exit_code = slurm_cluster.wait_job(submitted["job_id"], timeout=120)
    assert (state, exit_code) == ("COMPLETED", "0:0"), _batch_log(submitted)
    status = runs_slurm.status(submitted["job_id"], env=slurm_cluster.env)
    assert (status["state"], status["exit_code"], status["outcome"]) == ("COMPLETED", 0, "succeeded")
    assert [c["name"] for c in status["components"]] == ["slurm-it_t0:rollout", "slurm-it_t0:actor"]

    records = _records(tmp_path)
    expected = {f"{w.role}.{w.index}" for w in plan.workers} | {f"ref.{i}" for i in range(8)}
    assert set(records) == expected
    # ports are planned per node (rollout/0 and actor/0 get the same numbers), and both slurmd of the test cluster
    # are at 127.0.0.1 (NodeAddr), so the agents moved the second node's ports past the first's
    assert plan.worker("rollout", 0).ports == plan.worker("actor", 0).ports
    moved = {(w["role"], w["index"]): w for w in on_this_host(json.loads(plan.to_json()), ["127.0.0.1"] * 2)["workers"]}
    assert len({records[f"{w.role}.{w.index}"]["argv"][-1] for w in plan.workers}) == len(plan.workers)
    for w in plan.workers:
        rec = records[f"{w.role}.{w.index}"]
        assert rec["procid"] == str(w.index)  # the srun task that ran worker i has rank i
        assert rec["argv"][-2:] == ["--port", str(moved[(w.role, w.index)]["ports"][0])]
        # each node's whole 8-GPU allocation is 0..7 on the test cluster, so the mapping is the planned indices
        assert rec["cvd"] == ",".join(str(d) for d in w.devices), rec
        assert rec["host"] == "127.0.0.1"
        fork = records.get(f"ref.{w.index}") if w.role == "actor" else None
        if fork is not None:  # the forked ref shares its actor's devices and node
            assert (fork["cvd"], fork["node"]) == (rec["cvd"], rec["node"])
    assert records["rollout.0"]["node"] == records["rollout.1"]["node"]
    assert {records[f"actor.{i}"]["node"] for i in range(8)} == {"node1", "node2"} - {records["rollout.0"]["node"]}

    logs = runs_slurm.log_paths(Path(submitted["run_dir"]))
    assert set(logs["workers"]) == {f"{w.role}/{w.index}" for w in plan.workers} | {f"ref/{i}" for i in range(8)}
    assert "succeeded (every worker ended with code 0); exit code 0" in _batch_log(submitted)


def test_failing_worker_fails_the_job_with_its_exit_code(slurm_cluster, tmp_path):
    # actor/1 exits 3; the rollouts would sleep for 5 minutes unless the script stops them
    _, target = _compile(_experiment(tmp_path, rollout_args="--sleep 300", actor_args="--fail-index 1 --exit-code 3"),
                         tmp_path / "slurm")
    submitted = runs_slurm.submit(target, env=slurm_cluster.env)
    state, exit_code = slurm_cluster.wait_job(submitted["job_id"], timeout=120)
    assert (state, exit_code) == ("FAILED", "3:0"), _batch_log(submitted)
    status = runs_slurm.status(submitted["job_id"], env=slurm_cluster.env)
    assert (status["exit_code"], status["outcome"]) == (3, "failed")
    log = _batch_log(submitted)
    assert "actor/1 failed first, with code 3: stopping every step" in log, log
    state_dir = Path(submitted["run_dir"]) / "state"
    rollout = json.loads((state_dir / "rollout.0.json").read_text())
    assert rollout["status"] == "stopped", rollout  # stopped by the script, not finished by itself


SITE = """\
{% extends "job.sbatch.j2" %}
{% block before_job %}
export SITE_DIR="$RUN_DIR/site"
mkdir -p "$SITE_DIR"
echo "$SLURM_JOB_ID" > "$SITE_DIR/before_job"
{% endblock %}
{% block before_agent %}
echo "$SLURMD_NODENAME $SLURM_STEP_ID $SLURM_PROCID" >> "$SITE_DIR/before_agent"
{% endblock %}
{% block after_job %}
echo "$code" > "$SITE_DIR/after_job"
exit 5
{% endblock %}
"""


def test_a_site_templates_blocks_run_in_the_real_job(slurm_cluster, tmp_path):
    """before_job once in the batch script, before_agent on the node of every task of every step, after_job at the
    end; the last one failing leaves the job COMPLETED."""
    (tmp_path / "site.sbatch.j2").write_text(SITE)
    plan, target = _compile(_experiment(tmp_path, slurm=", template: site.sbatch.j2"), tmp_path / "slurm")
    submitted = runs_slurm.submit(target, env=slurm_cluster.env)
    state, exit_code = slurm_cluster.wait_job(submitted["job_id"], timeout=120)
    assert (state, exit_code) == ("COMPLETED", "0:0"), _batch_log(submitted)
    site = Path(submitted["run_dir"]) / "site"
    assert (site / "before_job").read_text().strip() == submitted["job_id"]
    tasks = [line.split() for line in (site / "before_agent").read_text().splitlines()]
    records = _records(tmp_path)
    steps = {role: {step for node, step, rank in tasks if (node, rank) in
                    {(records[f"{role}.{i}"]["node"], str(i)) for i in range(count)}} for role, count in
             (("rollout", 2), ("actor", 8))}
    assert len(tasks) == 10 and len(steps["rollout"]) == len(steps["actor"]) == 1, tasks
    assert steps["rollout"] != steps["actor"]  # one line per worker, from its own node and step
    assert len(_records(tmp_path)) == len(plan.workers) + 8  # every worker (and forked ref) ran after it
    assert (site / "after_job").read_text().strip() == "0"
    assert "the site's after_job block failed with exit code 5" in _batch_log(submitted)


def test_stop_cancels_a_running_job(slurm_cluster, tmp_path):
    _, target = _compile(_experiment(tmp_path, rollout_args="--sleep 300", actor_args="--sleep 300"),
                         tmp_path / "slurm")
    submitted = runs_slurm.submit(target, env=slurm_cluster.env)
    job_id = submitted["job_id"]
    slurm_cluster.wait_state(job_id, {"RUNNING"}, timeout=60)
    deadline = time.monotonic() + 60  # wait until every worker has started (so the stop hits running agents)
    while len(_records(tmp_path)) < 18 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(_records(tmp_path)) == 18, _batch_log(submitted)
    assert runs_slurm.stop(job_id, env=slurm_cluster.env)["cancel_requested"]
    state, _ = slurm_cluster.wait_job(job_id, timeout=120)
    assert state == "CANCELLED"
    status = runs_slurm.status(job_id, env=slurm_cluster.env)
    assert (status["state"], status["outcome"]) == ("CANCELLED", "stopped")


def _requests(script: str) -> list[dict]:
    """Per component: the #SBATCH options as a dict (flags map to None)."""
    comps = [{}]
    for line in script.splitlines():
        if line == "#SBATCH hetjob":
            comps.append({})
        elif line.startswith("#SBATCH --"):
            key, _, value = line[len("#SBATCH --"):].partition("=")
            comps[-1][key] = value or None
    return comps


def _fits(comps: list[dict]) -> bool:
    total_nodes = 0
    for c in comps:
        nodes, tasks, cpus = int(c["nodes"]), int(c["ntasks"]), int(c["cpus-per-task"])
        per_node_tasks = -(-tasks // nodes)
        gres = c.get("gres")
        if c.get("partition") not in CAPACITY["partitions"] or (gres and not gres.startswith("gpu:")):
            return False
        if per_node_tasks * cpus > CAPACITY["cpus"] or int(c["mem"].rstrip("G")) > CAPACITY["mem_gb"]:
            return False
        if gres and int(gres.rsplit(":", 1)[1]) > CAPACITY["gpus"]:
            return False
        total_nodes += nodes
    return total_nodes <= CAPACITY["nodes"]


def test_test_only_accepts_the_examples_that_fit(slurm_cluster, tmp_path):
    judged = []
    for example in EXAMPLES:
        _, target = _compile(example, tmp_path / example.stem)
        if not _fits(_requests((target / "job.sbatch").read_text())):
            continue
        verdict = runs_slurm.submit(target, test_only=True, env=slurm_cluster.env)
        assert verdict["accepted"] and re.search(r"Job \d+ to start", verdict["verdict"]), (example, verdict)
        judged.append(example.stem)
    assert {"two-node-decoupled", "cpu-dev"} <= set(judged), judged


def _two_node_example_with(tmp_path: Path, accelerators: int, actor: str) -> tuple[Path, list[str]]:
    """examples/two-node-decoupled.yaml with a bigger actor, compiled for Slurm; and each component's --nodes."""
    text = (EXAMPLES[0].parent / "two-node-decoupled.yaml").read_text()
    text = text.replace("num_accelerators: 16", f"num_accelerators: {accelerators}").replace('"fsdp:d8"', actor)
    path = tmp_path / "bigger.yaml"
    path.write_text(text)
    _, target = _compile(path, tmp_path / "slurm")
    return target, [c["nodes"] for c in _requests((target / "job.sbatch").read_text())]


def test_test_only_rejects_three_nodes_with_slurms_message(slurm_cluster, tmp_path):
    # --test-only judges each het component on its own (1 + 2 nodes would pass): the actor alone needs 3 nodes
    target, nodes = _two_node_example_with(tmp_path, 32, '"fsdp:d24"')
    assert nodes == ["1", "3"]
    with pytest.raises(runs_slurm.SlurmError) as err:
        runs_slurm.submit(target, test_only=True, env=slurm_cluster.env)
    assert err.value.code == "sbatch_rejected"
    assert "Requested node configuration is not available" in err.value.message


def test_cpu_demo_driver_and_servers(slurm_cluster, tmp_path):
    """examples/demo-cpu.yaml (servers that never exit, forked proxies, the gate, a controller as the driver;
    commands relative to the experiment's folder) ends with the driver: COMPLETED."""
    demo = EXAMPLES[0].parent / "demo-cpu.yaml"
    if not demo.is_file():
        pytest.skip("examples/demo-cpu.yaml is not in this checkout")
    text = re.sub(r"(?m)^fileroot: .*$", f"fileroot: {json.dumps(str(tmp_path / 'root'))}", demo.read_text())
    path = tmp_path / "demo-cpu.yaml"
    path.write_text(text)
    plan, target = _compile(path, tmp_path / "slurm")
    submitted = runs_slurm.submit(target, env=slurm_cluster.env, cwd=demo.parent)
    state, exit_code = slurm_cluster.wait_job(submitted["job_id"], timeout=120)
    assert (state, exit_code) == ("COMPLETED", "0:0"), _batch_log(submitted)
    logs = runs_slurm.log_paths(Path(submitted["run_dir"]))
    forked = {f"{r}/{i}" for r, role in plan.roles.items() if role.fork for i in range(role.workers)}
    assert set(logs["workers"]) == {f"{w.role}/{w.index}" for w in plan.workers} | forked
    assert "the driver exited with code 0" in _batch_log(submitted)


def _driver_experiment(tmp_path: Path, server_args: str, driver_args: str) -> Path:
    """Two CPU servers (report.py) and a driver (report.py too) on one node."""
    (tmp_path / "out").mkdir()
    cmd = f"python3 {shlex.quote(str(REPORT))}"
    spec = f"{{cpu: 1, mem: 1, env_vars: {{REPORT_OUT: {json.dumps(str(tmp_path / 'out'))}}}}}"
    path = tmp_path / "driver.yaml"
    path.write_text(f"""\
experiment_name: slurm-driver
trial_name: t0
compute: {{accelerator: CPU, num_accelerators: 0}}
fileroot: {json.dumps(str(tmp_path / "root"))}
roles:
  server: {{replicas: 2, cmd: {json.dumps(f"{cmd} {server_args}")}, scheduling_spec: {spec}, readiness: none}}
driver: {{cmd: {json.dumps(f"{cmd} {driver_args}")}, scheduling_spec: {spec}}}
runtime: {{grace_period: 2}}
slurm: {{partition: gpu, time: "00:10:00"}}
""", encoding="utf-8")
    return path


@pytest.mark.parametrize("server_args, driver_args, expected, why, stopped", [
    ("--sleep 300", "--sleep 1", ("COMPLETED", "0:0"), "the driver exited with code 0", "server.0"),
    ("--sleep 300", "--sleep 1 --fail-index 0 --exit-code 3", ("FAILED", "3:0"), "the driver exited with code 3",
     "server.0"),
    ("--sleep 2 --fail-index 1 --exit-code 5", "--sleep 300", ("FAILED", "5:0"),
     "server/1 failed with code 5 while the driver ran", "driver.0"),
], ids=["driver-exits-0", "driver-exits-3", "worker-fails-first"])
def test_the_driver_decides_the_job(slurm_cluster, tmp_path, server_args, driver_args, expected, why, stopped):
    """Servers that would run for 5 minutes: the job ends with the driver (or with a worker that fails first),
    within seconds, and every other step is stopped."""
    _, target = _compile(_driver_experiment(tmp_path, server_args, driver_args), tmp_path / "slurm")
    begun = time.monotonic()
    submitted = runs_slurm.submit(target, env=slurm_cluster.env)
    state, exit_code = slurm_cluster.wait_job(submitted["job_id"], timeout=120)
    assert (state, exit_code) == expected, _batch_log(submitted)
    assert time.monotonic() - begun < 90
    assert why in _batch_log(submitted)
    states = {p.stem: json.loads(p.read_text()) for p in (Path(submitted["run_dir"]) / "state").glob("*.json")}
    assert states[stopped]["status"] == "stopped", states  # stopped by the job, not ended by itself


def _areal(slurm_cluster, home: Path, *args: str, timeout: float = 60):
    import subprocess
    import sys

    env = dict(slurm_cluster.env, AREAL_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "areal_compiler", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_operator_verbs_submit_status_logs_stop(slurm_cluster, tmp_path):
    """The user's loop through the CLI: areal submit, status (until done), logs, ps; and stop of a long job."""
    home = tmp_path / "home"
    path = _experiment(tmp_path)
    submitted = _areal(slurm_cluster, home, "submit", str(path), "-o", "json")
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["data"]["job_id"]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        data = json.loads(_areal(slurm_cluster, home, "status", "-o", "json", "slurm-it/t0").stdout)["data"]
        if data["status"] in ("succeeded", "failed", "stopped", "crashed"):
            break
        time.sleep(0.5)
    assert (data["status"], data["slurm"]["job_id"]) == ("succeeded", job_id), data
    workers = {f"{w['role']}/{w['index']}": w["status"] for w in data["workers"]}
    assert workers["actor/3"] == "completed" and workers["ref/3"] in ("completed", "stopped")  # forks end with their target
    logs = _areal(slurm_cluster, home, "logs", "slurm-it/t0", "actor/2")
    assert logs.returncode == 0 and logs.stdout.startswith("report: actor/2 on node "), (logs.stdout, logs.stderr)
    runs = json.loads(_areal(slurm_cluster, home, "ps", "-a", "-o", "json").stdout)["data"]["runs"]
    assert [(r["run"], r["target"], r["status"]) for r in runs] == [("slurm-it/t0", "slurm", "succeeded")]

    long = tmp_path / "long.yaml"
    long.write_text(path.read_text().replace("trial_name: t0", "trial_name: t1")
                    .replace("--wait-for ref", "--wait-for ref --sleep 300"))
    assert _areal(slurm_cluster, home, "submit", str(long)).returncode == 0
    assert _areal(slurm_cluster, home, "submit", str(long)).returncode == 1  # the same run is still active
    stopped = _areal(slurm_cluster, home, "stop", "slurm-it/t1")
    assert stopped.returncode == 0, stopped.stderr
    deadline = time.monotonic() + 60
    while _areal(slurm_cluster, home, "status", "-o", "json", "slurm-it/t1").stdout.count('"stopped"') < 1:
        assert time.monotonic() < deadline, "job not cancelled"
        time.sleep(0.5)


def test_submit_refuses_components_that_fit_alone_but_not_together(slurm_cluster, tmp_path):
    """1 + 2 nodes on a 2-node cluster: Slurm's --test-only accepts each component (and the job would pend
    forever); areal refuses it before sbatch, naming the numbers."""
    target, nodes = _two_node_example_with(tmp_path, 24, '"fsdp:d16"')
    assert nodes == ["1", "2"]
    with pytest.raises(runs_slurm.SlurmError) as err:
        runs_slurm.submit(target, test_only=True, env=slurm_cluster.env)
    assert err.value.code == "exceeds_cluster"
    assert "needs 3 node(s) in partition gpu but it has 2" in err.value.message


def test_pending_job_is_listed_and_followed(slurm_cluster, tmp_path):
    """A job waiting for nodes another job holds: `areal ps` lists it pending and `areal logs -f` waits for it
    (polling slowly) instead of exiting; `areal stop` ends both."""
    import subprocess
    import sys

    home = tmp_path / "home"
    path = _experiment(tmp_path, rollout_args="--sleep 300", actor_args="--sleep 300")
    first = tmp_path / "first.yaml"
    first.write_text(path.read_text().replace("trial_name: t0", "trial_name: t1"))
    assert _areal(slurm_cluster, home, "submit", str(first)).returncode == 0
    assert _areal(slurm_cluster, home, "submit", str(path)).returncode == 0  # needs the same two nodes: pends
    deadline = time.monotonic() + 30
    while True:
        runs = json.loads(_areal(slurm_cluster, home, "ps", "-o", "json").stdout)["data"]["runs"]
        statuses = {r["run"]: r["status"] for r in runs}
        if statuses.get("slurm-it/t0") == "pending":
            break
        assert time.monotonic() < deadline, statuses
        time.sleep(0.5)
    follow = subprocess.Popen([sys.executable, "-m", "areal_compiler", "logs", "-f", "slurm-it/t0"],
                              env=dict(slurm_cluster.env, AREAL_HOME=str(home)), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4)
        assert follow.poll() is None, follow.communicate()  # still waiting for the pending job
    finally:
        for run in ("slurm-it/t0", "slurm-it/t1"):
            assert _areal(slurm_cluster, home, "stop", run).returncode == 0
        out, err = follow.communicate(timeout=60)  # ends once the job is over
    assert follow.returncode == 0, err
