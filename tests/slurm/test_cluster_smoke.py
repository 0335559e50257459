"""Smoke tests of the real Slurm test cluster (tests/slurm/cluster.sh): what the compiler relies on.

Jobs that really run ask for 1 CPU each: the nodes claim 96 CPUs (config_overrides) but the
machine has only a couple of real cores.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm


def _write_script(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(body).lstrip())
    path.chmod(0o755)
    return path


def test_hetjob_two_components_get_fake_gpus(slurm_cluster, tmp_path):
    script = _write_script(
        tmp_path,
        "het.sbatch",
        f"""\
        #!/bin/bash
        #SBATCH --job-name=smoke-het
        #SBATCH --output={tmp_path}/het-%j.out
        #SBATCH --nodes=1 --ntasks=1 --cpus-per-task=1 --gres=gpu:2
        #SBATCH hetjob
        #SBATCH --nodes=1 --ntasks=1 --cpus-per-task=1 --gres=gpu:2
        set -euo pipefail
        record='echo "CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES:-}} host=$(hostname) node=$SLURMD_NODENAME"'
        srun --het-group=0 bash -c "$record > {tmp_path}/comp0.txt" &
        p0=$!
        srun --het-group=1 bash -c "$record > {tmp_path}/comp1.txt" &
        p1=$!
        wait "$p0"
        wait "$p1"
        """,
    )
    job_id = slurm_cluster.submit(script)
    state, exit_code = slurm_cluster.wait_job(job_id, timeout=30)
    log = (tmp_path / f"het-{job_id}.out").read_text() if (tmp_path / f"het-{job_id}.out").exists() else ""
    assert (state, exit_code) == ("COMPLETED", "0:0"), log
    assert len(slurm_cluster.job_records(job_id)) == 2  # two hetjob components
    for comp in ("comp0.txt", "comp1.txt"):
        line = (tmp_path / comp).read_text().strip()
        fields = dict(part.split("=", 1) for part in line.split())
        devices = fields["CUDA_VISIBLE_DEVICES"].split(",")
        assert len(devices) == 2 and all(d.isdigit() for d in devices), line
        assert fields["host"] and fields["node"] in ("node1", "node2"), line


def test_failing_step_propagates_exit_code(slurm_cluster, tmp_path):
    script = _write_script(
        tmp_path,
        "fail.sbatch",
        f"""\
        #!/bin/bash
        #SBATCH --job-name=smoke-fail
        #SBATCH --output={tmp_path}/fail-%j.out
        #SBATCH --ntasks=1 --cpus-per-task=1
        srun bash -c 'exit 3'
        rc=$?
        echo "step exited $rc"
        exit "$rc"
        """,
    )
    job_id = slurm_cluster.submit(script)
    assert slurm_cluster.wait_job(job_id, timeout=30) == ("FAILED", "3:0")
    assert "step exited 3" in (tmp_path / f"fail-{job_id}.out").read_text()


def test_test_only_judges_realistic_requests(slurm_cluster, tmp_path):
    script = _write_script(tmp_path, "big.sbatch", "#!/bin/bash\ntrue\n")
    ok = slurm_cluster.test_only(script, "--nodes=2", "--gres=gpu:8", "--cpus-per-task=8")
    assert ok.returncode == 0, ok.stderr
    assert "to start at" in ok.stderr, ok.stderr

    too_big = slurm_cluster.test_only(script, "--nodes=3", "--gres=gpu:8", "--cpus-per-task=8")
    assert too_big.returncode != 0
    assert "Requested node configuration is not available" in too_big.stderr, too_big.stderr


def test_scancel_ends_cancelled(slurm_cluster, tmp_path):
    script = _write_script(
        tmp_path,
        "sleep.sbatch",
        f"""\
        #!/bin/bash
        #SBATCH --job-name=smoke-sleep
        #SBATCH --output={tmp_path}/sleep-%j.out
        #SBATCH --ntasks=1 --cpus-per-task=1
        srun sleep 300
        """,
    )
    job_id = slurm_cluster.submit(script)
    assert slurm_cluster.wait_state(job_id, {"RUNNING"}, timeout=20) == "RUNNING"
    slurm_cluster.cancel(job_id)
    state, _exit_code = slurm_cluster.wait_job(job_id, timeout=20)
    assert state == "CANCELLED"
