"""Real training on the compiled plan, on the REAL Ray head node: upstream AReaL 1.0.4's SFTTrainer trains a tiny
causal LM on two actor ranks (tests/areal/test_training.py runs the same job with `areal run`), submitted with
`areal submit --target ray`."""
from __future__ import annotations

from helpers import areal, free_port_block
from test_ray_jobs import _env, _job_log, _run, _submit, _wait
from upstream_training import check_trained, processes_naming, write_job


def test_upstream_sft_trains_on_the_ray_head(ray_cluster, areal_python, tiny_sft, tmp_path):
    # planned ports stay below the kernel's ephemeral range (32768+), where Ray's own processes take ports
    exp = write_job(tmp_path, areal_python, tiny_sft, base_port=free_port_block(16, 20000, 32000))
    said = _submit(ray_cluster, tmp_path, exp)
    assert said.returncode == 0, said.stderr.decode()
    record, state = _wait(tmp_path, _run(said), timeout=900)
    assert (state.value, record.exit_code) == ("succeeded", 0), _job_log(ray_cluster, record)[-5000:]
    assert not processes_naming(str(tmp_path)), "the job left processes behind"
    logs = [areal("logs", _run(said), f"actor/{rank}", env=_env(tmp_path)).stdout.decode(errors="replace")
            for rank in range(2)]
    check_trained(areal_python, tmp_path, tiny_sft, logs)
