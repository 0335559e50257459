"""Real training on the compiled plan, on this machine: upstream AReaL 1.0.4's SFTTrainer trains a tiny causal LM.

`areal run` of an experiment whose actor role is two of upstream's RPC servers (FSDP, data parallel over both, on
CPU) and whose driver is programs/sft_train.py (upstream's load_expr_config, get_custom_dataset and SFTTrainer;
run-trainer has it use the planned scheduler). Two epochs of four steps on the tiny model and data set of
make_tiny.py, served by upstream's data service; the checks are upstream_training.check_trained. The same job,
the driver loading the data itself: tests/slurm/test_slurm_training.py and tests/ray/test_ray_training.py."""
from __future__ import annotations

import re
from pathlib import Path

from helpers import areal, free_port_block
from upstream_training import check_trained, run_job, write_job


def test_upstream_sft_trains_the_tiny_model_on_the_planned_workers(areal_python, tiny_sft, tmp_path):
    """With upstream's data service, its default: the planned `data-data` guard forks the data worker, router and
    gateway, which serve the batches, and stops them (by pid, which the guard logs) when the trainer closes."""
    exp = write_job(tmp_path, areal_python, tiny_sft, base_port=free_port_block(16), data_service=True)
    home = tmp_path / "home"
    run_job([str(exp)], tmp_path, home)
    env = {"AREAL_HOME": str(home), "PATH": "/usr/bin:/bin"}
    logs = {name: areal("logs", "sft-tiny/t0", name, env=env).stdout.decode(errors="replace")
            for name in ("actor/0", "actor/1", "data-data/0")}
    check_trained(areal_python, tmp_path, tiny_sft, [logs["actor/0"], logs["actor/1"]])
    forked = dict(re.findall(r"Killed forked worker (data-\w+)/0 \(pid=(\d+)\)", logs["data-data/0"]))
    assert sorted(forked) == ["data-gateway", "data-router", "data-worker"], logs["data-data/0"][-3000:]
    assert not [pid for pid in forked.values() if Path(f"/proc/{pid}").exists()]
