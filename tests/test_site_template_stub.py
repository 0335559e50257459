"""A site template's blocks executed by bash against the stub Slurm commands of test_slurm_stub.py: where and when
each block runs, what it sees, and that it cannot change the job's exit code."""
from __future__ import annotations

import json
from pathlib import Path

from test_slurm_stub import DUMP, calls, compile_to, experiment, het_env, run_script, stubs  # noqa: F401

SITE = """\
{% extends "job.sbatch.j2" %}
{% block before_job %}
export SITE_DIR="$RUN_DIR/site"
mkdir -p "$SITE_DIR"
module load cuda/12.4
{% endblock %}
{% block before_agent %}
printf '%s %s\\n' "$SLURM_PROCID" {{ run_id|q }} >> "$SITE_DIR/before_agent.$(basename "$SLURM_HOSTFILE")"
export SITE_STEP="ran before the agent"
{{ step_exit }}
{% endblock %}
{% block after_job %}
echo "after_job saw $code" > "$SITE_DIR/after_job"
sacct -j "$SLURM_JOB_ID"
exit 9
{% endblock %}
"""


def site_experiment(tmp_path: Path, step_exit: str = "") -> tuple:
    roles = (f'  rollout: {{backend: "sglang:d2t4", cmd: "python3 {DUMP}", scheduling_spec: {{cpu: 1, mem: 1}}}}\n'
             f'  actor: {{backend: "fsdp:d8", cmd: "python3 {DUMP}", scheduling_spec: {{cpu: 1, mem: 1}}}}\n')
    (tmp_path / "site.sbatch.j2").write_text(SITE.replace("{{ step_exit }}", step_exit))
    path = experiment(tmp_path, roles, slurm="{template: site.sbatch.j2}")
    return compile_to(path, tmp_path / "slurm")


def test_every_block_runs_where_it_should_and_the_exit_code_stays_the_jobs(tmp_path, stubs):
    plan, target = site_experiment(tmp_path)
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    env = dict(het_env(stubs), STUB_MODE="exec", STUB_ADDR="127.0.0.1", DUMP_DIR=str(dumps))
    code, err = run_script(target, env)
    assert code == 0, err  # after_job exited 9: reported, and the job's code is still the agent's
    assert "the site's after_job block failed with exit code 9" in err
    site = tmp_path / "root" / "stub-exp" / "t1" / "77" / "site"
    for role, count in (("rollout", 2), ("actor", 8)):  # every task of every step, before its agent
        lines = (site / f"before_agent.{role}").read_text().splitlines()
        assert sorted(lines) == sorted(f"{i} {plan.run_id}" for i in range(count))
    seen = [json.loads(p.read_text()) for p in dumps.glob("*.json")]
    assert len(seen) == 10 and all(rec["env"]["SITE_STEP"] == "ran before the agent" for rec in seen)
    assert (site / "after_job").read_text() == "after_job saw 0\n"
    log = calls(env)
    first_srun = next(i for i, line in enumerate(log) if line.startswith("srun "))
    assert log.index("module load cuda/12.4") < first_srun < log.index("sacct -j 77")


def test_a_failing_before_agent_fails_its_step_and_the_job(tmp_path, stubs):
    _, target = site_experiment(tmp_path, step_exit='if [[ "$SLURM_PROCID" == 1 ]]; then exit 4; fi')
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    env = dict(het_env(stubs), STUB_MODE="exec", STUB_ADDR="127.0.0.1", DUMP_DIR=str(dumps))
    code, err = run_script(target, env)
    assert code == 4, err
    assert (tmp_path / "root" / "stub-exp" / "t1" / "77" / "site" / "after_job").read_text() == "after_job saw 4\n"
