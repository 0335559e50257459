"""job.sbatch executed by bash against stub srun/scontrol/scancel/sbatch (small bash scripts first on PATH).

Fake mode: each stub srun step exits with the code the test chose per role, or hangs until SIGTERM; checks control
flow (exit codes, stopping the other steps, requeue, signals). Exec mode: the stub srun runs the agent command line
for real once per task (SLURM_PROCID, SLURMD_NODENAME from the host file, the step's CUDA_VISIBLE_DEVICES), which
checks device slicing and that hostile values arrive byte-for-byte without anything being executed by a shell."""
from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from areal_compiler.agent.plan import on_this_host
from areal_compiler.pipeline import compile_file
from areal_compiler.runs import slurm as runs_slurm

SRUN = r"""#!/bin/bash
# stub srun: record the call, then run every task (exec mode) or pretend (fake mode)
name=""; ntasks=1; out=/dev/null; args=()
while [[ $# -gt 0 && "$1" == --* ]]; do
  case "$1" in
    --ntasks=*) ntasks="${1#--ntasks=}" ;;
    --output=*) out="${1#--output=}" ;;
    --job-name=*) name="${1#--job-name=}" ;;
  esac
  args+=("$1"); shift
done
role="${name##*:}"
var="$(printf '%s' "$role" | tr 'a-z-' 'A-Z_')"
printf 'srun %s hostfile=%s hosts=%s\n' "${args[*]}" "$(paste -sd, "$SLURM_HOSTFILE")" "$AREAL_NODE_HOSTS" >> "$STUB_LOG"
echo "$$" > "$STUB_DIR/pids/$role"
env > "$STUB_DIR/env.$role"
mapfile -t hosts < "$SLURM_HOSTFILE"
if [[ "${STUB_MODE:-fake}" == fake ]]; then
  hang="STUB_HANG_$var"; code="STUB_EXIT_$var"
  if [[ -n "${!hang:-}" ]]; then
    trap 'echo "stopped $role" >> "$STUB_LOG"; exit 143' TERM
    while :; do sleep 0.05 & wait $!; done
  fi
  exit "${!code:-0}"
fi
cvd="STUB_CVD_$var"
pids=()
for ((i = 0; i < ntasks; i++)); do
  SLURM_PROCID=$i SLURMD_NODENAME="${hosts[$i]}" CUDA_VISIBLE_DEVICES="${!cvd:-}" "$@" > "${out//%t/$i}" 2>&1 &
  pids+=("$!")
done
rc=0
for pid in "${pids[@]}"; do
  code=0; wait "$pid" || code=$?
  if (( code > rc )); then rc=$code; fi
done
exit "$rc"
"""
SCONTROL = r"""#!/bin/bash
echo "scontrol $*" >> "$STUB_LOG"
case "$1 $2" in
  "show hostnames") tr ',' '\n' <<< "$3" ;;
  "show node") host="$4"; echo "NodeName=$host Arch=x86_64 NodeAddr=${STUB_ADDR:-${STUB_ADDR_PREFIX:-}$host} NodeHostName=$host Port=0" ;;
  "requeue "*) ;;
  *) echo "stub scontrol: unexpected $*" >&2; exit 1 ;;
esac
"""
SCANCEL = r"""#!/bin/bash
echo "scancel $*" >> "$STUB_LOG"
for f in "$STUB_DIR"/pids/*; do
  [[ -e "$f" ]] && kill -TERM "$(cat "$f")" 2>/dev/null
done
exit 0
"""
LOGGED = r"""#!/bin/bash
# a site's own command (module, sacct), as a site template calls it: recorded only
echo "$(basename "$0") $*" >> "$STUB_LOG"
"""
SINFO = r"""#!/bin/bash
echo "sinfo $*" >> "$STUB_LOG"
printf '%s\n' ${STUB_NODES:-nodeA nodeB}
"""
SBATCH = r"""#!/bin/bash
echo "sbatch $* cwd=$PWD target=${AREAL_TARGET_DIR:-}" >> "$STUB_LOG"
if [[ "$1" == --test-only ]]; then
  if [[ -n "${STUB_REJECT:-}" ]]; then echo "sbatch: error: Batch job submission failed: Requested node configuration is not available" >&2; exit 1; fi
  echo "sbatch: Job 41 to start at 2030-01-01T00:00:00 using 8 processors on node1" >&2; exit 0
fi
echo "77;areal-test"
"""


def _free_base_port(span: int = 64) -> int:
    """A base_port whose next `span` ports are free now, below the kernel's ephemeral range (32768+) so that
    outgoing connections of concurrently running processes do not take them meanwhile."""
    rng = random.Random()
    for _ in range(100):
        base = rng.randrange(12000, 30000 - span)
        socks = []
        try:
            for port in range(base, base + span):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no free port range")


@pytest.fixture
def stubs(tmp_path):
    bindir, state = tmp_path / "stubbin", tmp_path / "stubstate"
    bindir.mkdir()
    (state / "pids").mkdir(parents=True)
    for name, body in (("srun", SRUN), ("scontrol", SCONTROL), ("scancel", SCANCEL), ("sbatch", SBATCH),
                       ("sinfo", SINFO), ("module", LOGGED), ("sacct", LOGGED)):
        (bindir / name).write_text(body)
        (bindir / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "AREAL_"))}
    env.update(PATH=f"{bindir}{os.pathsep}{env['PATH']}", STUB_LOG=str(state / "calls.log"), STUB_DIR=str(state),
               SLURM_JOB_ID="77", USER=env.get("USER", "stub-user"))  # Slurm sets USER in every job
    return env


def experiment(tmp_path: Path, roles: str, accel: str = "GPU_8xH100", count: int = 16, slurm: str = "{}",
               extra: str = "", fileroot: str | None = None) -> Path:
    root = fileroot if fileroot is not None else str(tmp_path / "root")
    text = (f"experiment_name: stub-exp\ntrial_name: t1\n"
            f"compute: {{accelerator: {accel}, num_accelerators: {count}}}\n"
            f"fileroot: {json.dumps(root)}\nroles:\n{roles}slurm: {slurm}\n"
            f"runtime: {{grace_period: 1, base_port: {_free_base_port()}}}\n{extra}")
    path = tmp_path / "exp.yaml"
    path.write_text(text, encoding="utf-8")
    return path


TWO_NODES = """\
  rollout: {backend: "sglang:d2t4", cmd: "python3 -c pass", scheduling_spec: {cpu: 1, mem: 1}}
  actor: {backend: "fsdp:d8", cmd: "python3 -c pass", scheduling_spec: {cpu: 1, mem: 1}}
"""


def compile_to(path: Path, out: Path):
    result = compile_file(str(path), ("slurm",))
    assert result.ok, [str(d) for d in result.diagnostics]
    out.mkdir(parents=True)
    for name, artifact in result.artifacts.items():
        (out / name.split("/", 1)[1]).write_bytes(artifact.content)
    return result.plan, out


def run_script(target: Path, env: dict, wait: bool = True, **extra: str):
    env = dict(env, SLURM_SUBMIT_DIR=str(target), **extra)
    proc = subprocess.Popen(["bash", str(target / "job.sbatch")], cwd=str(target), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return proc
    out, err = proc.communicate(timeout=120)
    return proc.returncode, err


def calls(env: dict) -> list[str]:
    path = Path(env["STUB_LOG"])
    return path.read_text().splitlines() if path.exists() else []


def het_env(env: dict) -> dict:
    return dict(env, SLURM_JOB_NODELIST_HET_GROUP_0="nodeA", SLURM_JOB_NODELIST_HET_GROUP_1="nodeB",
                STUB_ADDR_PREFIX="addr-")


def test_all_steps_succeed(tmp_path, stubs):
    plan, target = compile_to(experiment(tmp_path, TWO_NODES), tmp_path / "slurm")
    code, err = run_script(target, het_env(stubs))
    assert code == 0, err
    log = calls(stubs)
    sruns = sorted(line for line in log if line.startswith("srun "))  # the steps start concurrently
    assert len(sruns) == 2
    assert "--het-group=0 " in sruns[0] and "--ntasks=2 " in sruns[0] and "hostfile=nodeA,nodeA " in sruns[0]
    assert "--het-group=1 " in sruns[1] and "--ntasks=8 " in sruns[1] and f"hostfile={','.join(['nodeB'] * 8)} " \
        in sruns[1]
    assert all(line.endswith("hosts=addr-nodeA,addr-nodeB") for line in sruns)  # logical node order
    assert not any(line.startswith(("scancel", "scontrol requeue")) for line in log)
    run_dir = tmp_path / "root" / "stub-exp" / "t1" / "77"
    token = run_dir / "agent.token"
    assert token.stat().st_mode & 0o777 == 0o600 and len(token.read_text()) == 64
    assert "job 77 succeeded (every worker ended with code 0); exit code 0" in err


def test_host_lists_past_64_nodes_reach_the_steps_in_files(tmp_path, stubs):
    roles = TWO_NODES.replace('"sglang:d2t4"', '"sglang:d65t8"')  # rollout: 65 nodes; actor: 1
    plan, target = compile_to(experiment(tmp_path, roles, count=66 * 8), tmp_path / "slurm")
    names = [f"n{k:03d}" for k in range(66)]
    code, err = run_script(target, stubs, SLURM_JOB_NODELIST_HET_GROUP_0=",".join(names[:65]),
                           SLURM_JOB_NODELIST_HET_GROUP_1=names[65], STUB_ADDR_PREFIX="addr-")
    assert code == 0, err
    lists = tmp_path / "root" / "stub-exp" / "t1" / "77" / "lists"
    for role in ("rollout", "actor"):
        env = dict(line.split("=", 1) for line in (Path(stubs["STUB_DIR"]) / f"env.{role}").read_text().splitlines()
                   if "=" in line)
        assert "AREAL_NODE_HOSTS" not in env and env["AREAL_NODE_HOSTS_FILE"] == str(lists / "AREAL_NODE_HOSTS")
        assert "AREAL_SLURM_HOSTS_ROLLOUT" not in env  # 65 names: past 64 x 255 bytes
        assert env["AREAL_SLURM_HOSTS_ROLLOUT_FILE"] == str(lists / "AREAL_SLURM_HOSTS_ROLLOUT")
        assert env["AREAL_SLURM_HOSTS_ACTOR"] == "n065"  # one name: in the environment, as ever
    assert (lists / "AREAL_NODE_HOSTS").read_text() == ",".join(f"addr-{n}" for n in names)  # logical node order
    assert (lists / "AREAL_SLURM_HOSTS_ROLLOUT").read_text() == ",".join(names[:65])
    assert f"logical nodes -> {lists / 'AREAL_NODE_HOSTS'}" in err


def test_failing_step_fails_the_script_and_stops_the_others(tmp_path, stubs):
    _, target = compile_to(experiment(tmp_path, TWO_NODES), tmp_path / "slurm")
    code, err = run_script(target, het_env(stubs), STUB_EXIT_ACTOR="3", STUB_HANG_ROLLOUT="1")
    assert code == 3, err
    log = calls(stubs)
    assert "scancel --signal=TERM 77" in log and "stopped rollout" in log
    assert "actor/0 failed first, with code 3: stopping every step" in err  # its step ended before its agents
    assert not any(line.startswith("scontrol requeue") for line in log)  # max_retries 0


@pytest.mark.parametrize("restarts,requeued", [("0", True), ("1", True), ("2", False), ("5", False)])
def test_requeue_only_below_max_retries(tmp_path, stubs, restarts, requeued):
    _, target = compile_to(experiment(tmp_path, TWO_NODES, slurm="{max_retries: 2}"), tmp_path / "slurm")
    code, err = run_script(target, het_env(stubs), STUB_EXIT_ROLLOUT="3", SLURM_RESTART_COUNT=restarts)
    assert code == 3, err
    assert ("scontrol requeue 77" in calls(stubs)) == requeued


def test_requeued_attempt_keeps_the_previous_state_aside(tmp_path, stubs):
    _, target = compile_to(experiment(tmp_path, TWO_NODES, slurm="{max_retries: 2}"), tmp_path / "slurm")
    run_dir = tmp_path / "root" / "stub-exp" / "t1" / "77"
    (run_dir / "state").mkdir(parents=True)
    (run_dir / "state" / "rollout.0.json").write_text('{"status": "failed", "exit_code": 9}')
    (run_dir / "logs" / "rollout").mkdir(parents=True)
    code, err = run_script(target, het_env(stubs), STUB_EXIT_ACTOR="4", SLURM_RESTART_COUNT="1")
    assert code == 4, err  # not the 9 of the previous attempt
    assert (run_dir / "attempt-0" / "state" / "rollout.0.json").is_file()
    assert (run_dir / "attempt-0" / "logs" / "rollout").is_dir() and not (run_dir / "state").exists()


def test_success_is_never_requeued(tmp_path, stubs):
    _, target = compile_to(experiment(tmp_path, TWO_NODES, slurm="{max_retries: 2}"), tmp_path / "slurm")
    code, _ = run_script(target, het_env(stubs))
    assert code == 0 and "scontrol requeue 77" not in calls(stubs)


def test_term_is_forwarded_to_the_steps_and_not_requeued(tmp_path, stubs):
    _, target = compile_to(experiment(tmp_path, TWO_NODES, slurm="{max_retries: 2}"), tmp_path / "slurm")
    proc = run_script(target, het_env(stubs), wait=False, STUB_HANG_ROLLOUT="1", STUB_HANG_ACTOR="1")
    pids = Path(stubs["STUB_DIR"]) / "pids"
    deadline = time.monotonic() + 30
    while not ((pids / "rollout").exists() and (pids / "actor").exists()) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    log = calls(stubs)
    assert "scancel --signal=TERM 77" in log and "stopped rollout" in log and "stopped actor" in log
    assert "scontrol requeue 77" not in log and "was stopped" in err


def test_single_role_experiment_is_a_plain_job(tmp_path, stubs):
    roles = '  actor: {backend: "fsdp:d8", cmd: "python3 -c pass", scheduling_spec: {cpu: 1, mem: 1}}\n'
    _, target = compile_to(experiment(tmp_path, roles, count=8), tmp_path / "slurm")
    text = (target / "job.sbatch").read_text()
    assert "hetjob" not in text and "--het-group" not in text
    code, err = run_script(target, dict(stubs, SLURM_JOB_NODELIST="nodeA"))
    assert code == 0, err
    assert [line for line in calls(stubs) if line.startswith("srun ")][0].endswith("hosts=nodeA")


def test_missing_plan_or_nodes_is_a_clear_error(tmp_path, stubs):
    _, target = compile_to(experiment(tmp_path, TWO_NODES), tmp_path / "slurm")
    (target / "plan.json").unlink()
    code, err = run_script(target, het_env(stubs))
    assert code == 2 and "no plan.json and agent.pyz" in err
    _, target = compile_to(experiment(tmp_path, TWO_NODES), tmp_path / "slurm2")
    code, err = run_script(target, dict(het_env(stubs), SLURM_JOB_NODELIST_HET_GROUP_1=""))
    assert code == 2 and "expected 1 node(s) for actor" in err
    assert not any(line.startswith("srun ") for line in calls(stubs))


DUMP = Path(__file__).resolve().parent / "slurm" / "programs" / "dump.py"


def test_agents_slice_the_steps_devices(tmp_path, stubs):
    # one node: rollout (2 x 2 GPUs) and actor (4 x 1 GPU) share it, so one component and two steps
    roles = (f'  rollout: {{backend: "sglang:d2t2", cmd: "python3 {DUMP}", scheduling_spec: {{cpu: 1, mem: 1}}}}\n'
             f'  actor: {{backend: "fsdp:d4", cmd: "python3 {DUMP}", scheduling_spec: {{cpu: 1, mem: 1}}}}\n')
    out = tmp_path / "dumps"
    out.mkdir()
    plan, target = compile_to(experiment(tmp_path, roles, count=8, extra=""), tmp_path / "slurm")
    env = dict(stubs, STUB_MODE="exec", STUB_ADDR="127.0.0.1", SLURM_JOB_NODELIST="nodeA", STUB_CVD_ROLLOUT="1,3,5,7",
               STUB_CVD_ACTOR="0,2,4,6", DUMP_DIR=str(out))
    code, err = run_script(target, env)
    assert code == 0, err
    seen = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in out.glob("*.json")}
    cvd = {name: rec["env"]["CUDA_VISIBLE_DEVICES"] for name, rec in seen.items()}
    assert cvd == {"rollout.0": "1,3", "rollout.1": "5,7", "actor.0": "0", "actor.1": "2", "actor.2": "4",
                   "actor.3": "6"}
    assert all(rec["env"]["SLURMD_NODENAME"] == "nodeA" for rec in seen.values())


HOSTILE = ["$(touch {pwned})", "`touch {pwned}`", "it's \"quoted\"", "line1\nline2", "two  spaces ",
           "ünïcødé ✓", "; touch {pwned} #", "${{HOME}}", "\\$(touch {pwned})"]


def test_hostile_values_arrive_unchanged_and_nothing_runs(tmp_path, stubs):
    pwned = tmp_path / "pwned-XYZ"
    values = [v.format(pwned=pwned) for v in HOSTILE]
    env_vars = {f"HOSTILE_{i}": v for i, v in enumerate(values)}
    cmd = "python3 " + str(DUMP) + " " + " ".join("'" + v.replace("'", "'\"'\"'") + "'" for v in values)
    out = tmp_path / "dumps"
    out.mkdir()
    spec = {"cpu": 1, "mem": 1, "env_vars": env_vars}
    roles = (f"  rollout: {json.dumps({'backend': 'sglang:d2t4', 'cmd': cmd, 'scheduling_spec': spec})}\n"
             f"  actor: {json.dumps({'backend': 'fsdp:d8', 'cmd': cmd, 'scheduling_spec': spec})}\n")
    fileroot = str(tmp_path / "root $(touch {0}) `touch {0}` ü".format(pwned))
    plan, target = compile_to(experiment(tmp_path, roles, fileroot=fileroot, slurm='{partition: "a b$(x)"}'),
                              tmp_path / "slurm")
    script = (target / "job.sbatch").read_text(encoding="utf-8")
    for marker in ("HOSTILE_", "line1", "ünïcødé", "two  spaces", "quoted"):  # argv and env stay in plan.json
        assert marker not in script
    env = dict(het_env(stubs), STUB_MODE="exec", STUB_ADDR="127.0.0.1", DUMP_DIR=str(out))
    code, err = run_script(target, env)
    assert code == 0, err
    seen = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in out.glob("*.json")}
    assert set(seen) == {f"{w.role}.{w.index}" for w in plan.workers}
    # both stub nodes are at 127.0.0.1: the agents moved the second node's ports past the first's
    moved = {(w["role"], w["index"]): w["ports"] for w in on_this_host(json.loads(plan.to_json()),
                                                                       ["127.0.0.1"] * plan.nodes)["workers"]}
    for w in plan.workers:
        rec = seen[f"{w.role}.{w.index}"]
        assert rec["argv"][:len(values)] == values and rec["argv"][-2:] == ["--port", str(moved[w.role, w.index][0])]
        for key, value in env_vars.items():
            assert rec["env"][key] == value
        assert rec["env"]["AREAL_AGENT_TOKEN_FILE"] == fileroot + "/stub-exp/t1/77/agent.token"
    assert (Path(fileroot) / "stub-exp" / "t1" / "77" / "state").is_dir()  # the literal path, nothing expanded
    assert not pwned.exists()


def test_runs_submit_status_stop_against_stubs(tmp_path, stubs):
    _, target = compile_to(experiment(tmp_path, TWO_NODES), tmp_path / "slurm")
    submitted = runs_slurm.submit(target, env=stubs, cwd=tmp_path)
    parent = tmp_path / "root" / "stub-exp" / "t1"
    assert submitted == {"job_id": "77", "cluster": "areal-test", "run_dir": str(parent / "77"),
                         "batch_logs": [str(parent / "slurm-77.out"), str(parent / "slurm-77.err")]}
    assert parent.is_dir()  # Slurm does not create --output directories
    assert f"sbatch --parsable {target.resolve()}/job.sbatch cwd={tmp_path} target={target.resolve()}" \
        in calls(stubs)
    verdict = runs_slurm.submit(target, test_only=True, env=stubs)
    assert verdict["accepted"] and "Job 41 to start" in verdict["verdict"]
    with pytest.raises(runs_slurm.SlurmError, match="Requested node configuration is not available"):
        runs_slurm.submit(target, test_only=True, env=dict(stubs, STUB_REJECT="1"))
    assert runs_slurm.stop("77", env=stubs) == {"job_id": "77", "cancel_requested": True}
    assert "scancel 77" in calls(stubs)


def test_status_reads_every_component(tmp_path, stubs):
    fake = Path(stubs["PATH"].split(os.pathsep)[0]) / "scontrol"
    fake.write_text("#!/bin/bash\n"
                    "echo 'JobId=77 HetJobId=77 HetJobOffset=0 JobName=e_t:rollout JobState=FAILED "
                    "Reason=NonZeroExitCode ExitCode=3:0 Restarts=1 NodeList=node1'\n"
                    "echo 'JobId=78 HetJobId=77 HetJobOffset=1 JobName=e_t:actor JobState=FAILED Reason=None "
                    "ExitCode=0:0 Restarts=1 NodeList=node2'\n")
    status = runs_slurm.status("77", env=stubs)
    assert (status["state"], status["exit_code"], status["terminal"], status["outcome"]) == \
        ("FAILED", 3, True, "failed")
    assert [(c["name"], c["exit_code"], c["restarts"]) for c in status["components"]] == \
        [("e_t:rollout", 3, 1), ("e_t:actor", 0, 1)]
    fake.write_text("#!/bin/bash\necho 'slurm_load_jobs error: Invalid job id specified' >&2\nexit 1\n")
    with pytest.raises(runs_slurm.SlurmError) as err:
        runs_slurm.status("77", env=dict(stubs, PATH=str(fake.parent)))  # and no sacct to fall back to
    assert err.value.code == "job_not_found"


def _status(tmp_path, stubs, printed: str) -> subprocess.CompletedProcess:
    """`areal status` of a recorded Slurm run whose scontrol prints PRINTED (printf %b escapes)."""
    fake = Path(stubs["PATH"].split(os.pathsep)[0]) / "scontrol"
    fake.write_text(f"#!/bin/bash\nprintf '%b\\n' '{printed}'\n")
    home = tmp_path / "home"
    (home / "runs" / "stub-exp").mkdir(parents=True)
    (home / "runs" / "stub-exp" / "t1.json").write_text(json.dumps({
        "name": "stub-exp/t1", "target": "slurm", "target_dir": str(tmp_path), "run_dir": "",
        "job": {"slurm_job_id": "77"}}))
    return subprocess.run([sys.executable, "-m", "areal_compiler", "status", "stub-exp/t1"], capture_output=True,
                          text=True, env=dict(stubs, AREAL_HOME=str(home)), timeout=60)


@pytest.mark.parametrize("printed", [
    "JobId=77 HetJobOffset=first JobName=e_t:rollout JobState=RUNNING ExitCode=0:0 Restarts=0",
    "JobId=77 JobName=e_t:rollout JobState=RUNNING ExitCode=0:0 Restarts=lots",
    "Welcome to the cluster!"])
def test_status_of_a_run_with_unreadable_scontrol_output_is_unknown_exit_1(tmp_path, stubs, printed):
    """Issue 24 item 6: whatever scontrol prints, `areal status` says which command printed what, reads the run as
    unknown and exits 1 (never 70)."""
    result = _status(tmp_path, stubs, printed)
    assert result.returncode == 1, result.stderr
    assert "unknown" in result.stdout.splitlines()[0] and "internal error" not in result.stderr
    assert "scontrol -o show job 77 printed a line that is not a job record" in result.stdout, result.stdout


def test_scontrol_output_that_is_not_utf8_is_read(tmp_path, stubs):
    result = _status(tmp_path, stubs, "JobId=77 JobName=\\xff\\xfe JobState=RUNNING ExitCode=0:0 Restarts=0")
    assert result.returncode == 0 and "internal error" not in result.stderr, result.stderr
    assert result.stdout.startswith("stub-exp/t1  target slurm  running"), result.stdout


def test_log_paths(tmp_path):
    run_dir = tmp_path / "trial" / "77"
    for rel in ("logs/actor/10.log", "logs/actor/2.log", "logs/ref/0.log"):
        (run_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / rel).write_text("x")
    (tmp_path / "trial" / "slurm-77.out").write_text("x")
    logs = runs_slurm.log_paths(run_dir)
    assert list(logs["workers"]) == ["actor/2", "actor/10", "ref/0"]
    assert logs["batch"] == [str(tmp_path / "trial" / "slurm-77.out")]


GOLDEN_SCRIPTS = sorted((Path(__file__).resolve().parent.parent / "golden").glob("*/slurm/job.sbatch"))


@pytest.mark.parametrize("script", GOLDEN_SCRIPTS, ids=lambda p: p.parent.parent.name)
@pytest.mark.parametrize("fail", [False, True], ids=["ok", "first-role-exits-3"])
def test_golden_scripts_run_under_the_stubs(tmp_path, stubs, script, fail):
    """The committed goldens themselves are executed (fake steps): success exits 0, a failing step exits 3."""
    from areal_compiler.bundle import agent_bundle

    plan_path = script.parent.parent / "plan.json"  # the goldens store the plan once per example
    plan = json.loads(plan_path.read_text())
    target = tmp_path / "slurm"
    target.mkdir()
    (target / "plan.json").write_bytes(plan_path.read_bytes())
    (target / "agent.pyz").write_bytes(agent_bundle())  # pinned by hash in the golden manifests
    # The golden's fileroot (e.g. /shared/...) is swapped for a temporary one; nothing else is touched.
    text = script.read_text().replace(plan["fileroot"], str(tmp_path / "root"))
    (target / "job.sbatch").write_text(text)
    components = text.split("#SBATCH hetjob\n")
    env = dict(stubs)
    for k, part in enumerate(components):
        nodes = int(part.split("#SBATCH --nodes=")[1].split("\n")[0])
        hosts = ",".join(f"c{k}n{i}" for i in range(nodes))
        env["SLURM_JOB_NODELIST" if len(components) == 1 else f"SLURM_JOB_NODELIST_HET_GROUP_{k}"] = hosts
    first_role = next(n for n, r in plan["roles"].items() if r["colocated_with"] is None and r["workers"])
    extra = {f"STUB_EXIT_{first_role.upper().replace('-', '_')}": "3"} if fail else {}
    code, err = run_script(target, env, **extra)
    assert code == (3 if fail else 0), err
    sruns = [line for line in calls(env) if line.startswith("srun ")]
    placed = [n for n, r in plan["roles"].items() if r["colocated_with"] is None and r["workers"]]
    assert len(sruns) == len(placed)  # one step per role with its own workers


def test_submit_refuses_more_nodes_than_the_partition_has(tmp_path, stubs):
    """sbatch --test-only judges each het component alone; the total must fit the partition or the job pends
    forever, so submit checks it first (and submits nothing)."""
    _, target = compile_to(experiment(tmp_path, TWO_NODES, slurm="{partition: gpu}"), tmp_path / "slurm")
    env = dict(stubs, STUB_NODES="nodeA")
    for test_only in (True, False):
        with pytest.raises(runs_slurm.SlurmError, match="needs 2 node\\(s\\) in partition gpu but it has 1"):
            runs_slurm.submit(target, test_only=test_only, env=env)
    assert "sinfo -h -N -o %N -p gpu" in calls(stubs)
    assert not any(line.startswith("sbatch") for line in calls(stubs))
    assert runs_slurm.submit(target, test_only=True, env=stubs)["accepted"]  # two nodes: fits
