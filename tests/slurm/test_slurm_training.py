"""Real training on the compiled plan, on the REAL two-node Slurm: upstream AReaL 1.0.4's SFTTrainer trains a tiny
causal LM with one actor rank on each node (tests/areal/test_training.py runs the same job with `areal run`).

The job is planned for two one-GPU nodes (GPU_1xA10, `fsdp:d2`) so that the ranks land on different nodes; the
test cluster's GPUs are fake, torch finds no CUDA and upstream's FSDP engine runs on CPU (gloo) on both nodes."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers import areal, free_port_block
from upstream_training import check_trained, processes_naming, write_job
from areal_compiler.runs import slurm as runs_slurm

pytestmark = pytest.mark.slurm


def test_upstream_sft_trains_with_one_rank_on_each_slurm_node(slurm_cluster, areal_python, tiny_sft, tmp_path):
    exp = write_job(tmp_path, areal_python, tiny_sft, base_port=free_port_block(16), two_nodes=True,
                    extra='slurm: {partition: gpu, time: "00:20:00"}\n')
    compiled = areal("compile", str(exp), "--target", "slurm", "--out", str(tmp_path / "compiled"))
    assert compiled.returncode == 0, compiled.stderr.decode()
    submitted = runs_slurm.submit(tmp_path / "compiled" / "slurm", env=slurm_cluster.env, cwd=tmp_path)
    state, exit_code = slurm_cluster.wait_job(submitted["job_id"], timeout=900)
    logs = runs_slurm.log_paths(Path(submitted["run_dir"]))
    batch = "\n".join(Path(p).read_text(errors="replace")[-3000:] for p in logs["batch"])
    assert (state, exit_code) == ("COMPLETED", "0:0"), batch
    assert not processes_naming(str(tmp_path)), "the job left processes behind"
    actor_logs = [Path(logs["workers"][f"actor/{rank}"]).read_text(errors="replace") for rank in range(2)]
    check_trained(areal_python, tmp_path, tiny_sft, actor_logs)
    # one rank per node: srun ran the actor step's two tasks by its host file, one line per rank
    hosts = (Path(submitted["run_dir"]) / "hosts" / "actor").read_text().split()
    assert hosts == ["node1", "node2"] and slurm_cluster.job_info(submitted["job_id"])["NodeList"] == "node[1-2]"
