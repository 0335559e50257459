"""A plan.json over the 1 MiB one ConfigMap holds: cut into pieces, one ConfigMap each, mounted together, read whole
by the agent; the node addresses past the agent's 16 KiB in the environment likewise (node-hosts.N, named by
AREAL_NODE_HOSTS_FILE in the pods); the manifests still pass every offline layer. At the format's largest size
(8,192 nodes) the REAL control plane (tests/kubernetes/cluster.sh) admits and stores the job."""
from __future__ import annotations

import base64
import json
import sys

from helpers import ROOT
from kube import wait_for
from manifests import objects, pod_templates, problems
from areal_compiler.agent.plan import load_plan, node_hosts
from areal_compiler.targets.k8s_layout import layout

sys.path.insert(0, str(ROOT / "tests" / "bench"))
from synthetic import synthetic  # noqa: E402  (the scale benchmark's experiment)

LIMIT = 1024 * 1024  # bytes of data one ConfigMap may hold
FRONTIER = 8192  # nodes: the format's bound (65,536 devices)


def test_a_plan_too_large_for_one_configmap_is_cut_and_read_whole(compile_k8s, tmp_path):
    result, folder = compile_k8s(synthetic(512))  # plan.json of about 1.1 MB, 512 pod names of about 50 bytes
    assert result.ok, [d.message for d in result.diagnostics]
    plan_json = (folder / "plan.json").read_bytes()
    assert len(plan_json) > LIMIT
    objs = objects(folder)
    first, *parts = [o for o in objs if o["kind"] == "ConfigMap"]
    assert "plan.json" not in first["data"] and len(parts) == 3  # plan.json in two pieces, node-hosts in one
    mounted = tmp_path / "etc-areal"  # what the projected volume shows the pod: every key a file
    mounted.mkdir()
    pieces = {}
    for k, part in enumerate(parts, 1):
        assert part["metadata"]["name"] == f"{first['metadata']['name']}-{k}" and part["immutable"] is True
        (key, value), = part["binaryData"].items()
        assert len(value) <= LIMIT
        pieces[key] = base64.b64decode(value)
        (mounted / key).write_bytes(pieces[key])
    assert list(pieces) == ["plan.json.1", "plan.json.2", "node-hosts.1"]
    assert pieces["plan.json.1"] + pieces["plan.json.2"] == plan_json
    jobset = next(o for o in objs if o["kind"] == "JobSet")
    for job in jobset["spec"]["replicatedJobs"]:
        volume = next(v for v in job["template"]["spec"]["template"]["spec"]["volumes"] if v["name"] == "areal-files")
        assert volume["projected"]["sources"] == [{"configMap": {"name": o["metadata"]["name"]}} for o in [first] + parts]
    assert problems(objs, "1.33") == []
    hosts = layout(result.plan).hosts
    for _, _, template in pod_templates(jobset):  # every pod names the file, none lists the 512 addresses
        env = {e["name"]: e.get("value") for e in template["spec"]["containers"][0]["env"]}
        assert "AREAL_NODE_HOSTS" not in env and env["AREAL_NODE_HOSTS_FILE"] == "/etc/areal/node-hosts"
    pods = {"AREAL_NODE_HOSTS_FILE": str(mounted / "node-hosts")}  # as the JobSet sets it, read from its pieces
    assert node_hosts(result.plan.dump(), pods) == list(hosts) and len(hosts) == 512
    assert load_plan(str(mounted / "plan.json"), pods)["workers"] == result.plan.dump()["workers"]


def test_a_job_of_8192_nodes_is_admitted_and_stored_by_the_api_server(control_plane, namespace, compile_k8s):
    """Every object of the 8,192-node job passes the API server's server-side dry run as compiled (schemas, the
    JobSet CRD's CEL rules and webhooks, the request size limit); then the ConfigMaps and the JobSet are created
    for real, the JobSet suspended (so the fake nodes get no 8,192 pods), read back from etcd, and the JobSet
    controller makes its Jobs from it. Its size does not grow with the nodes: every pod once held all 8,192 pod
    names (jobset.yaml was 1.28 MB, near etcd's 1.5 MiB limit for one object)."""
    result, folder = compile_k8s(synthetic(FRONTIER), namespace=namespace)
    assert result.ok, [d.message for d in result.diagnostics]
    objs = [o for o in objects(folder) if o["kind"] in ("ConfigMap", "JobSet")]
    kube = control_plane.kube
    for obj in objs:
        kube.create(obj, query={"dryRun": "All"})
    assert kube.list("ConfigMap", namespace, "app.kubernetes.io/managed-by=areal-compile") == []  # nothing stored
    jobset = objs[-1]
    assert jobset["kind"] == "JobSet" and len(jobset["spec"]["replicatedJobs"]) == 3  # rollout, actor, driver
    for obj in objs[:-1]:
        kube.create(obj)
    kube.create({**jobset, "spec": {**jobset["spec"], "suspend": True}})
    stored = kube.get("JobSet", jobset["metadata"]["name"], namespace)
    size = len(json.dumps(stored, separators=(",", ":")))
    print(f"\n{FRONTIER} nodes: jobset.yaml {(folder / 'jobset.yaml').stat().st_size} bytes, the stored JobSet "
          f"{size} bytes, configmap.yaml {(folder / 'configmap.yaml').stat().st_size} bytes in {len(objs) - 1} "
          "ConfigMaps")
    assert size < 32 * 1024
    jobs = wait_for("the JobSet controller's Jobs", lambda: (lambda found: found if len(found) == 3 else None)(
        kube.list("Job", namespace, f"jobset.sigs.k8s.io/jobset-name={jobset['metadata']['name']}")))
    assert sorted(j["spec"]["parallelism"] for j in jobs) == [1, FRONTIER // 2, FRONTIER // 2]
    for job in jobs:
        env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["AREAL_NODE_HOSTS_FILE"] == "/etc/areal/node-hosts" and "AREAL_NODE_HOSTS" not in env
    assert kube.list("Pod", namespace) == []  # suspended: the Jobs made no pods
