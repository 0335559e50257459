"""The Kubernetes run backend and `areal submit/status/logs/stop` against a STAND-IN API server (standin.py):
no real API server can run here, so these tests show the requests and the reading of answers, not a cluster."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from helpers import ROOT
from standin import StandIn
from areal_compiler.runs.base import OperatorError, RunState
from areal_compiler.runs.kubernetes import Backend
from areal_compiler.runs.registry import RunRecord

NS, NAME = "rl-training", "gsm8k-grpo-async-trial0"


@pytest.fixture
def api(tmp_path, monkeypatch):
    server = StandIn(tmp_path)
    monkeypatch.setenv("KUBECONFIG", str(server.kubeconfig))
    monkeypatch.setenv("AREAL_HOME", str(tmp_path / "home"))
    yield server
    server.close()


@pytest.fixture
def folder(compile_k8s):
    data = yaml.safe_load((ROOT / "examples" / "two-node-decoupled.yaml").read_text(encoding="utf-8"))
    data["driver"] = {"cmd": "python3 -m train", "scheduling_spec": {"cpu": 2, "mem": 4}}
    result, out = compile_k8s(yaml.safe_dump(data, sort_keys=False))
    assert result.ok
    return out


def _record(folder):
    return RunRecord("gsm8k-grpo-async/trial0", "kubernetes", str(folder), "")


def _pod(name, component, phase, state=None):
    labels = {"app.kubernetes.io/instance": NAME, "areal/component": component}
    status = {"phase": phase, "containerStatuses": [{"name": "agents", "ready": phase == "Running",
                                                     "restartCount": 0, "state": state or {"running": {}}}]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, "labels": labels},
            "status": status}


def test_dry_run_asks_the_server_and_stores_nothing(api, folder):
    said = Backend().submit(folder, _record(folder), dry_run=True)
    assert "server-side dry run" in said["verdict"] and f"JobSet/{NAME}" in said["objects"]
    posts = [(p, q) for m, p, q in api.store.requests if m == "POST"]
    assert len(posts) == 3 and all(q == {"dryRun": "All"} for _, q in posts)  # Secret, ConfigMap, JobSet
    assert not any(api.store.objects.values())


def test_submit_creates_the_token_secret_then_the_manifests(api, folder):
    record = _record(folder)
    Backend().submit(folder, record)
    posted = [p.rsplit("/", 1)[-1] for m, p, _ in api.store.requests if m == "POST"]
    assert posted == ["secrets", "configmaps", "jobsets"]
    secret = api.store.objects[("secrets", NS)][f"{NAME}-agent-token"]
    token = secret["stringData"]["token"]
    assert len(token) == 64 and all(token.encode() not in p.read_bytes() for p in folder.iterdir())
    assert record.job == {"namespace": NS, "name": NAME, "workload": "JobSet",
                          "selector": f"app.kubernetes.io/instance={NAME}"}
    with pytest.raises(OperatorError) as info:  # the same run again: the JobSet exists
        Backend().submit(folder, _record(folder))
    assert info.value.kind == "conflict" and NAME in info.value.message


def test_forbidden_names_the_missing_verb_and_resource(api, folder):
    api.store.forbidden.add(("create", "jobsets"))
    with pytest.raises(OperatorError) as info:
        Backend().submit(folder, _record(folder))
    assert info.value.kind == "denied"
    assert "needs verb `create` on `jobsets`" in info.value.message and NS in info.value.message


def test_state_and_details_follow_pods_and_conditions(api, folder):
    record, backend = _record(folder), Backend()
    backend.submit(folder, record)
    assert backend.state(record) == RunState.PENDING
    api.store.put("pods", NS, _pod(f"{NAME}-rollout-0-0-abcde", "rollout", "Pending",
                                   {"waiting": {"reason": "ImagePullBackOff"}}))
    api.store.put("pods", NS, _pod(f"{NAME}-actor-0-0-fghij", "actor", "Failed",
                                   {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}))
    api.store.put("events", NS, {"metadata": {"name": "e1"}, "involvedObject": {"name": f"{NAME}-rollout-0-0-abcde"},
                                 "type": "Warning", "reason": "Failed", "message": "Back-off pulling image"})
    api.store.put("events", NS, {"metadata": {"name": "e2"}, "involvedObject": {"name": "someone-else"},
                                 "type": "Normal", "reason": "Pulled", "message": "other run"})
    details = backend.details(record)
    rows = {p["component"]: p["containers"][0] for p in details["pods"]}
    assert rows["rollout"]["waiting_reason"] == "ImagePullBackOff"
    assert (rows["actor"]["exit_code"], rows["actor"]["reason"]) == (137, "OOMKilled")
    assert [e["message"] for e in details["events"]] == ["Back-off pulling image"]
    jobset = api.store.objects[("jobsets", NS)][NAME]
    jobset["status"] = {"restarts": 0, "conditions": [{"type": "Failed", "status": "True", "reason": "FailedJobs",
                                                      "message": "jobset failed: actor"}]}
    api.store.put("pods", NS, _pod(f"{NAME}-driver-0-0-zzzzz", "driver", "Failed",
                                   {"terminated": {"exitCode": 3, "reason": "Error"}}))
    assert backend.state(record) == RunState.FAILED and record.exit_code == 3
    assert backend.details(record)["conditions"][0]["message"] == "jobset failed: actor"


def test_logs_per_worker_and_stop_by_label(api, folder):
    record, backend = _record(folder), Backend()
    backend.submit(folder, record)
    api.store.put("pods", NS, _pod(f"{NAME}-rollout-0-0-abcde", "rollout", "Running"))
    api.store.put("pods", NS, _pod(f"{NAME}-driver-0-0-zzzzz", "driver", "Running"))
    api.store.logs[f"{NAME}-rollout-0-0-abcde"] = "rollout/0 | serving\nrollout/1 | serving too\nrollout/0 | bye\n"
    api.store.logs[f"{NAME}-driver-0-0-zzzzz"] = "step 1\n"
    lines = list(backend.logs(record, "rollout/0", None, False, lambda: record))
    assert lines == [("rollout/0", "serving"), ("rollout/0", "bye")]
    assert list(backend.logs(record, "driver", None, False, lambda: record)) == [("driver/0", "step 1")]
    assert len(list(backend.logs(record, None, 1, False, lambda: record))) == 2  # the last line of each pod
    said = backend.stop(record, force=False)
    assert f"JobSet/{NAME}" in said and f"Secret/{NAME}-agent-token" in said and "Pod" not in said
    assert not api.store.objects[("jobsets", NS)] and not api.store.objects[("secrets", NS)]
    assert backend.stop(record, force=False) == "already stopped"
    assert backend.state(record) == RunState.STOPPED


def test_cli_submit_status_stop(api, folder, tmp_path):
    env = dict(os.environ)
    run = [sys.executable, "-m", "areal_compiler"]
    out = subprocess.run(run + ["submit", str(folder), "--target", "kubernetes", "-o", "json"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert NAME in api.store.objects[("jobsets", NS)]
    status = subprocess.run(run + ["status", "gsm8k-grpo-async/trial0", "-o", "json"], env=env, capture_output=True,
                            text=True, timeout=60)
    data = json.loads(status.stdout)["data"]
    assert data["target"] == "kubernetes" and data["status"] == "pending", status.stdout
    stop = subprocess.run(run + ["stop", "gsm8k-grpo-async/trial0"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert stop.returncode == 0 and "deleted JobSet/" in stop.stdout, stop.stderr
