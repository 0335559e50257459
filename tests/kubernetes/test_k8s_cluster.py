"""`areal submit/status/logs/stop --target kubernetes` against the REAL control plane of tests/kubernetes/cluster.sh:
Kubernetes v1.36.3's API server (admission, CEL rules of the JobSet CRD, Pod Security `baseline`, RBAC), its
controller manager (Job, StatefulSet, garbage collector) and scheduler, and the JobSet controller v0.12.0 with its
webhooks. Only the nodes are fake (fake_kubelet.py): it moves pods Running, ends a pod with the exit code a test
asks for, and serves the pod-log stream the API server proxies `areal logs` to, so logs are a STAND-IN's text
carried by the real API path (RBAC `pods/log`, the API server's kubelet proxy)."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest
import yaml

from fake_kubelet import EXIT_CODE, LOG
from helpers import EXAMPLES, ROOT
from kube import wait_for

DRIVER = {"cmd": "python3 -m train", "scheduling_spec": {"cpu": 2, "mem": 4}}
H100_NODES = {"gpu-h100-0", "gpu-h100-1"}


def two_node(driver: bool = True, **kubernetes) -> str:
    data = yaml.safe_load((ROOT / "examples" / "two-node-decoupled.yaml").read_text(encoding="utf-8"))
    if driver:
        data["driver"] = DRIVER
    data["kubernetes"] = kubernetes
    return yaml.safe_dump(data, sort_keys=False)


class Cli:
    """`areal` as a user runs it: its own AREAL_HOME, KUBECONFIG naming the test server."""

    def __init__(self, kubeconfig, home):
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "AREAL_HOME": str(home)}

    def __call__(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "areal_compiler", *args], env=self.env, capture_output=True,
                              text=True, timeout=120)

    def json(self, *args: str) -> tuple[int, dict]:
        out = self(*args, "-o", "json")
        try:
            return out.returncode, json.loads(out.stdout)
        except ValueError:
            raise AssertionError(f"areal {' '.join(args)}: no JSON envelope: {out.stdout!r} {out.stderr!r}") from None

    def status(self, run: str) -> tuple[int, dict]:
        code, envelope = self.json("status", run)
        return code, envelope["data"]


@pytest.fixture
def cli(control_plane, tmp_path):
    token = control_plane.state["admin_token"]
    return Cli(control_plane.kubeconfig(tmp_path / "admin.kubeconfig", token), tmp_path / "home")


def submitted(cli, compile_k8s, text: str, **settings):
    result, folder = compile_k8s(text, **settings)
    assert result.ok, [d.message for d in result.diagnostics]
    out = cli("submit", str(folder), "--target", "kubernetes")
    assert out.returncode == 0, out.stderr
    return folder


def pods(kube, namespace: str, count: int, phase: str | None = None) -> list[dict]:
    """The run's pods once there are `count` of them (all in `phase`, if given), ordered by component."""
    def probe():
        found = kube.list("Pod", namespace, "app.kubernetes.io/managed-by=areal-compile")
        live = [p for p in found if not p["metadata"].get("deletionTimestamp")]
        ok = len(live) == count and all(phase is None or p.get("status", {}).get("phase") == phase for p in live)
        return sorted(live, key=lambda p: p["metadata"]["labels"]["areal/component"]) if ok else None
    return wait_for(f"{count} pods{' ' + phase if phase else ''} in {namespace}", probe)


def by_component(found: list[dict]) -> dict[str, dict]:
    return {p["metadata"]["labels"]["areal/component"]: p for p in found}


def end_pod(kube, pod: dict, code: int) -> None:
    kube.patch("Pod", pod["metadata"]["name"], {"metadata": {"annotations": {EXIT_CODE: str(code)}}},
               pod["metadata"]["namespace"])


def run_state(cli, run: str, want: str) -> dict:
    return wait_for(f"{run} {want}", lambda: (lambda s: s if s["status"] == want else None)(cli.status(run)[1]))


# -- every example: admitted by the API server (dry run, then for real) and made into pods --

def _expected_pods(folder) -> int:
    from manifests import objects, pod_templates

    total = 0
    for obj in objects(folder):
        for _, job, _ in pod_templates(obj):
            total += job["spec"]["parallelism"] if job else obj["spec"]["replicas"]
    return total


# an experiment with a driver is refused for workload statefulset at compile time (test_k8s_validation.py)
CASES = [(e, w) for e in EXAMPLES for w in ("jobset", "statefulset")
         if w == "jobset" or "\ndriver:" not in e.read_text(encoding="utf-8")]


@pytest.mark.parametrize("example,workload", CASES, ids=[f"{e.stem}-{w}" for e, w in CASES])
def test_every_example_is_accepted_then_runs_as_pods(example, workload, control_plane, namespace, cli, compile_k8s):
    """Server-side dry run, then the real submit: the JobSet (CRD schema, CEL rules, the controller's webhooks) or
    the StatefulSets and Services are admitted, and the controllers make every pod (Pod Security baseline)."""
    result, folder = compile_k8s(example, workload=workload, namespace=namespace)
    assert result.ok, [d.message for d in result.diagnostics]
    code, said = cli.json("submit", str(folder), "--target", "kubernetes", "--dry-run")
    assert code == 0 and "server-side dry run" in said["data"]["verdict"], said
    kinds = {"jobset": "JobSet", "statefulset": "StatefulSet"}
    assert not control_plane.kube.list(kinds[workload], namespace)  # a dry run stores nothing
    code, said = cli.json("submit", str(folder), "--target", "kubernetes")
    assert code == 0, said
    made = pods(control_plane.kube, namespace, _expected_pods(folder))
    if any("huawei.com/Ascend910" in p["spec"]["containers"][0]["resources"]["limits"] for p in made):
        wait_for("the NPU pod on the Ascend node", lambda: {
            p["spec"].get("nodeName") for p in control_plane.kube.list("Pod", namespace)
            if "huawei.com/Ascend910" in p["spec"]["containers"][0]["resources"]["limits"]} == {"npu-910b-0"})
    run = said["data"]["run"]
    out = cli("stop", run)
    assert out.returncode == 0 and "deleted" in out.stdout, out.stderr
    for kind in ("JobSet", "StatefulSet", "Service", "ConfigMap", "Secret"):
        left = control_plane.kube.list(kind, namespace, "app.kubernetes.io/managed-by=areal-compile")
        assert left == [], f"{kind} left after stop: {[o['metadata']['name'] for o in left]}"


# -- the JobSet controller, the Job controller and the scheduler with our JobSet --

def test_jobset_becomes_the_pods_we_planned_on_the_right_nodes(control_plane, namespace, cli, compile_k8s, tmp_path):
    kube = control_plane.kube
    folder = submitted(cli, compile_k8s, two_node(name="tn", namespace=namespace))
    found = by_component(pods(kube, namespace, 3, "Running"))
    token = base64.b64decode(kube.get("Secret", "tn-agent-token", namespace)["data"]["token"])
    assert len(token) == 64 and all(token not in p.read_bytes() for p in folder.iterdir())  # never in the artifact
    again = Cli(cli.env["KUBECONFIG"], tmp_path / "other-home")("submit", str(folder), "--target", "kubernetes")
    assert again.returncode == 1 and "already exists" in again.stderr, again.stderr  # the run is there: refused
    assert kube.get("Secret", "tn-agent-token", namespace)["data"]["token"] == base64.b64encode(token).decode()
    jobs = sorted(j["metadata"]["name"] for j in kube.list("Job", namespace))
    assert jobs == ["tn-actor-0", "tn-driver-0", "tn-rollout-0"]
    plan_hosts = "tn-rollout-0-0.tn,tn-actor-0-0.tn"
    for component, pod in found.items():
        spec, meta = pod["spec"], pod["metadata"]
        assert meta["name"].startswith(f"tn-{component}-0-0-")
        assert (spec["hostname"], spec["subdomain"]) == (f"tn-{component}-0-0", "tn")
        assert meta["annotations"]["batch.kubernetes.io/job-completion-index"] == "0"
        container = spec["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        assert env["AREAL_NODE_HOSTS"]["value"] == plan_hosts
        assert "JOB_COMPLETION_INDEX" in env  # added by the Job controller for Indexed Jobs
        assert container["resources"]["requests"] == container["resources"]["limits"]
    gpu = found["rollout"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu == {"cpu": "96", "memory": "816Gi", "nvidia.com/gpu": "8"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in \
        found["actor"]["spec"]["tolerations"]
    terms = found["actor"]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["NVIDIA-H100-80GB-HBM3"]
    # the scheduler: one 8-GPU pod per H100 node (never the A100 node), the CPU-only driver on the CPU node
    assert {found["rollout"]["spec"]["nodeName"], found["actor"]["spec"]["nodeName"]} == H100_NODES
    assert found["driver"]["spec"]["nodeName"] == "cpu-0"
    service = kube.get("Service", "tn", namespace)  # the JobSet controller's headless Service
    assert service["spec"]["clusterIP"] == "None"
    code, data = cli.status("gsm8k-grpo-async/trial0")
    assert code == 0 and data["status"] == "running", data
    assert {(w["role"], w["index"], w["status"]) for w in data["workers"]} == \
        {("driver", 0, "running"), ("rollout", 0, "running"), ("actor", 0, "running")}


def test_driver_exit_0_completes_and_stop_cleans_up(control_plane, namespace, cli, compile_k8s):
    kube, run = control_plane.kube, "gsm8k-grpo-async/trial0"
    submitted(cli, compile_k8s, two_node(name="ok", namespace=namespace))
    end_pod(kube, by_component(pods(kube, namespace, 3, "Running"))["driver"], 0)
    data = run_state(cli, run, "succeeded")
    assert data["exit_code"] == 0
    assert any(c["type"] == "Completed" and c["status"] == "True" for c in data["conditions"])
    out = cli("stop", run)
    assert out.returncode == 0, out.stderr
    assert "JobSet/ok" in out.stdout and "Secret/ok-agent-token" in out.stdout
    for kind in ("JobSet", "ConfigMap", "Secret", "Job"):
        wait_for(f"no {kind} left", lambda: not kube.list(kind, namespace, "app.kubernetes.io/instance=ok")
                 and not (kind == "Job" and kube.list("Job", namespace)))
    wait_for("the pods gone", lambda: not kube.list("Pod", namespace))


def test_driver_exit_3_fails_the_run_with_3(control_plane, namespace, cli, compile_k8s):
    kube, run = control_plane.kube, "gsm8k-grpo-async/trial0"
    submitted(cli, compile_k8s, two_node(name="bad", namespace=namespace))
    end_pod(kube, by_component(pods(kube, namespace, 3, "Running"))["driver"], 3)
    data = run_state(cli, run, "failed")
    assert data["exit_code"] == 3
    out = cli("status", run)
    assert out.returncode == 1 and "failed  exit code 3" in out.stdout, out.stdout


def test_worker_failure_restarts_the_set_max_retries_times_then_fails(control_plane, namespace, cli, compile_k8s):
    kube, run = control_plane.kube, "gsm8k-grpo-async/trial0"
    submitted(cli, compile_k8s, two_node(name="rs", namespace=namespace, max_retries=1))
    first = by_component(pods(kube, namespace, 3, "Running"))
    end_pod(kube, first["actor"], 1)
    # the JobSet controller recreates every Job (restartStrategy Recreate): new pods, restarts 1, still running
    second = wait_for("pods of the restarted set", lambda: (lambda found: found if len(found) == 3 and all(
        p["metadata"]["uid"] != first[c]["metadata"]["uid"] and p["status"].get("phase") == "Running"
        for c, p in found.items()) else None)(by_component(
            [p for p in kube.list("Pod", namespace) if not p["metadata"].get("deletionTimestamp")])))
    code, data = cli.status(run)
    assert data["status"] == "running" and data["restarts"] == 1, data
    end_pod(kube, second["actor"], 1)  # no retries left
    data = run_state(cli, run, "failed")
    assert data["restarts"] == 1
    assert any(c["type"] == "Failed" and c["status"] == "True" for c in data["conditions"]), data["conditions"]


def test_a_job_too_large_for_the_nodes_stays_pending_with_the_schedulers_reason(control_plane, namespace, cli,
                                                                                compile_k8s):
    data = yaml.safe_load(two_node(driver=False, name="big", namespace=namespace))
    data["compute"]["num_accelerators"] = 24  # three 8-GPU H100 nodes; the cluster has two
    data["roles"]["rollout"]["backend"] = "sglang:d8t2"
    submitted(cli, compile_k8s, yaml.safe_dump(data, sort_keys=False))
    found = pods(control_plane.kube, namespace, 3)
    wait_for("two pods bound, one unschedulable", lambda: sorted(
        bool(p["spec"].get("nodeName")) for p in control_plane.kube.list("Pod", namespace)) == [False, True, True])
    run = "gsm8k-grpo-async/trial0"
    state = wait_for("a pending worker with a reason", lambda: (lambda s: s if any(
        w["status"] == "pending" and "Insufficient nvidia.com/gpu" in w.get("message", "")
        for w in s["workers"]) else None)(cli.status(run)[1]))
    assert state["status"] == "pending", state
    out = cli("status", run)
    assert "Insufficient nvidia.com/gpu" in out.stdout and "pending" in out.stdout, out.stdout
    assert len(found) == 3


# -- workload: statefulset --

def test_statefulset_workload_pods_headless_services_ordinal_hostnames(control_plane, namespace, cli, compile_k8s):
    kube, run = control_plane.kube, "gsm8k-grpo-async/trial0"
    submitted(cli, compile_k8s, two_node(driver=False, name="ss", namespace=namespace, workload="statefulset"))
    found = by_component(pods(kube, namespace, 2, "Running"))
    for component, pod in found.items():
        service = kube.get("Service", f"ss-{component}", namespace)
        assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
        assert pod["metadata"]["name"] == f"ss-{component}-0"
        assert (pod["spec"]["hostname"], pod["spec"]["subdomain"]) == (f"ss-{component}-0", f"ss-{component}")
        assert pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "0"
        env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
        assert env["AREAL_NODE_HOSTS"]["value"] == "ss-rollout-0.ss-rollout,ss-actor-0.ss-actor"
    assert {found["rollout"]["spec"]["nodeName"], found["actor"]["spec"]["nodeName"]} == H100_NODES
    assert cli.status(run)[1]["status"] == "running"
    out = cli("stop", run)
    assert out.returncode == 0 and "StatefulSet/ss-rollout" in out.stdout and "Service/ss-actor" in out.stdout
    wait_for("the pods gone", lambda: not kube.list("Pod", namespace))


# -- logs: the real API path to a stand-in kubelet --

def test_logs_come_through_the_api_servers_kubelet_proxy(control_plane, namespace, cli, compile_k8s):
    """The API server proxies pods/log to the node's kubelet; fake_kubelet.py serves the text a test put in the
    pod's annotation (no container runs here): what is real is the route, the RBAC and areal's reading of it."""
    kube, run = control_plane.kube, "gsm8k-grpo-async/trial0"
    submitted(cli, compile_k8s, two_node(name="lg", namespace=namespace))
    found = by_component(pods(kube, namespace, 3, "Running"))
    texts = {"rollout": "rollout/0 | serving\nrollout/1 | serving too\nrollout/0 | bye\n", "actor": "actor/0 | step\n",
             "driver": "epoch 1\n"}
    for component, text in texts.items():
        kube.patch("Pod", found[component]["metadata"]["name"], {"metadata": {"annotations": {LOG: text}}}, namespace)
    out = cli("logs", run, "rollout/0")
    assert out.returncode == 0 and out.stdout == "serving\nbye\n", (out.stdout, out.stderr)
    out = cli("logs", run)
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.splitlines()) == sorted(["actor/0 | step", "driver/0 | epoch 1", "rollout/0 | serving",
                                                      "rollout/1 | serving too", "rollout/0 | bye"])
    out = cli("logs", run, "--tail", "1")
    assert sorted(out.stdout.splitlines()) == ["actor/0 | step", "driver/0 | epoch 1", "rollout/0 | bye"]
