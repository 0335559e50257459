"""The driver as a CPU `driver` replicated Job in its own pod and the JobSet's success target."""
from __future__ import annotations

import yaml

from helpers import ROOT
from manifests import objects, problems


def _jobs(folder):
    js = next(o for o in objects(folder) if o["kind"] == "JobSet")
    return js, {rj["name"]: rj["template"]["spec"] for rj in js["spec"]["replicatedJobs"]}


def test_driver_job_is_the_success_target_and_cpu_only(compile_k8s):
    data = yaml.safe_load((ROOT / "examples" / "two-node-decoupled.yaml").read_text(encoding="utf-8"))
    data["driver"] = {"cmd": "python3 -m areal.examples.grpo", "scheduling_spec": {"cpu": 4, "mem": 16}}
    result, folder = compile_k8s(yaml.safe_dump(data, sort_keys=False))
    assert result.ok, [d.message for d in result.diagnostics]
    js, jobs = _jobs(folder)
    assert js["spec"]["successPolicy"] == {"operator": "All", "targetReplicatedJobs": ["driver"]}
    assert list(jobs) == ["rollout", "actor", "driver"]
    driver = jobs["driver"]
    assert (driver["parallelism"], driver["completions"], driver["backoffLimit"]) == (1, 1, 0)
    pod = driver["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"][3:] == ["supervise", "--plan", "/etc/areal/plan.json", "--worker", "driver/0",
                                        "--run-dir", "/shared/areal/experiments/gsm8k-grpo-async/trial0/kubernetes"]
    assert container["resources"]["requests"] == {"cpu": "4", "memory": "16Gi"}  # no devices, no /dev/shm
    assert "affinity" not in pod and "tolerations" not in pod
    assert not any(v["name"] == "dshm" for v in pod["volumes"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["AREAL_AGENT_HOST"] == "gsm8k-grpo-async-trial0-driver-0-0.gsm8k-grpo-async-trial0"
    for name in ("rollout", "actor"):  # the node pods never start the driver
        assert "driver/0" not in jobs[name]["template"]["spec"]["containers"][0]["command"]
    assert problems(objects(folder), "1.33") == []


def test_demo_with_driver_compiles(compile_k8s):
    result, folder = compile_k8s(ROOT / "examples" / "demo-cpu.yaml")
    assert result.ok
    _, jobs = _jobs(folder)
    assert "driver" in jobs and jobs["driver"]["template"]["spec"]["containers"][0]["image"] == "python:3.11-slim"
