"""The driver as a CPU `driver` replicated Job and the JobSet's success target (plan built here until the plan
carries drivers itself: the role `driver`, kind driver, worker driver/0 on node 0 without devices)."""
from __future__ import annotations

import yaml

from helpers import ROOT
from manifests import problems
from areal_compiler.pipeline import plan_file
from areal_compiler.targets import kubernetes


def with_driver(plan, cpu=4, mem_gb=16):
    first = next(iter(plan.roles.values()))
    role = first.model_copy(update={"kind": "driver", "backend": None, "workers": 1, "devices_per_worker": 0,
                                    "nodes": [0], "colocated_with": None, "fork": False, "cpu": cpu,
                                    "mem_gb": mem_gb, "slurm": {}})
    worker = plan.workers[0].model_copy(update={"role": "driver", "index": 0, "node": 0, "devices": [], "forks": [],
                                                "agent_port": plan.workers[-1].agent_port + 1})
    return plan.model_copy(update={"roles": {**plan.roles, "driver": role}, "workers": [*plan.workers, worker]})


def _docs(plan):
    return {a.path: list(yaml.safe_load_all(a.content)) for a in kubernetes.render(plan)}


def test_driver_job_is_the_success_target_and_cpu_only():
    plan = with_driver(plan_file(str(ROOT / "examples" / "two-node-decoupled.yaml")).plan)
    assert kubernetes.check(plan) == []
    docs = _docs(plan)
    js = docs["jobset.yaml"][0]
    assert js["spec"]["successPolicy"] == {"operator": "All", "targetReplicatedJobs": ["driver"]}
    jobs = {rj["name"]: rj["template"]["spec"] for rj in js["spec"]["replicatedJobs"]}
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
    assert all("driver" not in c["command"] for c in
               (jobs[n]["template"]["spec"]["containers"][0] for n in ("rollout", "actor")))
    objs = [o for name, d in docs.items() if name in ("jobset.yaml", "configmap.yaml", "rbac.example.yaml") for o in d]
    assert problems(objs, "1.33") == []


def test_statefulset_workload_refuses_a_driver():
    plan = with_driver(plan_file(str(ROOT / "examples" / "two-node-decoupled.yaml")).plan)
    plan = plan.model_copy(update={"targets": {**plan.targets, "kubernetes": {**plan.targets["kubernetes"],
                                                                              "workload": "statefulset"}}})
    errors = kubernetes.check(plan)
    assert [e.path for e in errors] == [("kubernetes", "workload")] and "restarts every pod" in str(errors[0])
