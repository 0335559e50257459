"""A plan.json over the 1 MiB one ConfigMap holds: cut into pieces, one ConfigMap each, mounted together, read whole
by the agent; the node addresses past the agent's 16 KiB in the environment likewise (node-hosts.N, named by
AREAL_NODE_HOSTS_FILE in the pods); the manifests still pass every offline layer."""
from __future__ import annotations

import base64
import sys

from helpers import ROOT
from manifests import objects, pod_templates, problems
from areal_compiler.agent.plan import load_plan, node_hosts
from areal_compiler.targets.k8s_layout import layout

sys.path.insert(0, str(ROOT / "tests" / "bench"))
from synthetic import synthetic  # noqa: E402  (the scale benchmark's experiment)

LIMIT = 1024 * 1024  # bytes of data one ConfigMap may hold


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
