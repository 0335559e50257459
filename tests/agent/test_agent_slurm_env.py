"""What the Slurm target needs from the agent: the worker index from the environment (`--worker ROLE/@SLURM_PROCID`),
device slicing onto the scheduler's devices (AREAL_ALLOCATED_DEVICES) and start-up forks on their planned ports.

Run by pytest; agents are started as `python -m areal_compiler.agent supervise` subprocesses."""
from __future__ import annotations

import json

from agent_helpers import agent_env, make_plan, script, worker

DUMP = ("import json, os, sys; out = sys.argv[1] + os.environ['AREAL_WORKER_INDEX'] + '.json'; "
        "json.dump({'argv': sys.argv[1:], 'cvd': os.environ.get('CUDA_VISIBLE_DEVICES')}, open(out + '.tmp', 'w')); "
        "os.replace(out + '.tmp', out)")  # atomic: others poll it


def _gpu_plan(path, tmp_path, devices):
    """Workers w/0.. on node 0 with the given planned devices, each dumping argv and CUDA_VISIBLE_DEVICES."""
    plan = make_plan(path, [worker("w", i, script(DUMP) + [str(tmp_path / "w")]) for i in range(len(devices))])
    data = json.loads(path.read_text(encoding="utf-8"))
    data["accelerator"] = {"name": "GPU_8xH100", "devices_per_node": 8, "visibility_env": "CUDA_VISIBLE_DEVICES"}
    for item, devs in zip(data["workers"], devices):
        item["devices"] = devs
    path.write_text(json.dumps(data), encoding="utf-8")
    return plan


def test_worker_index_from_environment(tmp_path, agents):
    plan = _gpu_plan(tmp_path / "plan.json", tmp_path, [[0], [1], [2]])
    proc = agents(plan, "w/@SLURM_PROCID", tmp_path / "run", env=agent_env(SLURM_PROCID="2"))
    assert proc.wait(20) == 0
    assert json.loads((tmp_path / "w2.json").read_text())["argv"] == [str(tmp_path / "w")]
    assert not (tmp_path / "w0.json").exists() and not (tmp_path / "w1.json").exists()


def test_worker_index_variable_missing_or_not_a_number_exits_2(tmp_path, agents):
    plan = _gpu_plan(tmp_path / "plan.json", tmp_path, [[0]])
    for value in (None, "x1"):
        env = agent_env() if value is None else agent_env(SLURM_PROCID=value)
        env.pop("SLURM_PROCID", None) if value is None else None
        proc = agents(plan, "w/@SLURM_PROCID", tmp_path / "run", env=env)
        assert proc.wait(20) == 2
        assert "SLURM_PROCID" in proc.stderr.read()


def test_planned_devices_map_onto_allocated_devices_by_position(tmp_path, agents):
    # role w plans devices 2..5 on node 0; Slurm gave this step 5,6,7,9: w/1 (planned 4,5) gets 7,9
    plan = _gpu_plan(tmp_path / "plan.json", tmp_path, [[2, 3], [4, 5]])
    for index, expected in ((0, "5,6"), (1, "7,9")):
        proc = agents(plan, "w/%d" % index, tmp_path / "run", env=agent_env(AREAL_ALLOCATED_DEVICES="5,6,7,9"))
        assert proc.wait(20) == 0
        assert json.loads((tmp_path / ("w%d.json" % index)).read_text())["cvd"] == expected
    proc = agents(plan, "w/0", tmp_path / "run2")  # not set: the planned value stays
    assert proc.wait(20) == 0
    assert json.loads((tmp_path / "w0.json").read_text())["cvd"] == "2,3"


def test_too_few_allocated_devices_exit_2(tmp_path, agents):
    plan = _gpu_plan(tmp_path / "plan.json", tmp_path, [[0, 1], [2, 3]])
    proc = agents(plan, "w/1", tmp_path / "run", env=agent_env(AREAL_ALLOCATED_DEVICES="0,1,2"))
    assert proc.wait(20) == 2
    assert "AREAL_ALLOCATED_DEVICES" in proc.stderr.read()
    assert not (tmp_path / "w1.json").exists()


def test_startup_fork_gets_its_planned_ports(tmp_path, agents):
    out = tmp_path / "fork"
    wait_for_fork = "import os, sys, time\nwhile not os.path.exists(sys.argv[1] + '0.json'):\n    time.sleep(0.05)"
    fork = {"role": "ref", "index": 0, "argv": script(DUMP + "; print(os.environ['AREAL_PORTS'])") + [str(out)],
            "ports": [23456, 23457]}
    plan = make_plan(tmp_path / "plan.json", [worker("w", 0, script(wait_for_fork) + [str(out)], forks=[fork])])
    proc = agents(plan, "w/0", tmp_path / "run")
    assert proc.wait(20) == 0
    assert json.loads((tmp_path / "fork0.json").read_text())["argv"] == [str(out), "--port", "23456"]
    assert (tmp_path / "run" / "logs" / "ref" / "0.log").read_text().strip() == "23456,23457"
