"""A plan.json over the 1 MiB one ConfigMap holds: cut into pieces, one ConfigMap each, mounted together, read whole
by the agent; the manifests still pass every offline layer."""
from __future__ import annotations

import base64
import sys

from helpers import ROOT
from manifests import objects, problems
from areal_compiler.agent.plan import load_plan

sys.path.insert(0, str(ROOT / "tests" / "bench"))
from synthetic import synthetic  # noqa: E402  (the scale benchmark's experiment)

LIMIT = 1024 * 1024  # bytes of data one ConfigMap may hold


def test_a_plan_too_large_for_one_configmap_is_cut_and_read_whole(compile_k8s, tmp_path):
    result, folder = compile_k8s(synthetic(512))  # plan.json of about 1.1 MB
    assert result.ok, [d.message for d in result.diagnostics]
    plan_json = (folder / "plan.json").read_bytes()
    assert len(plan_json) > LIMIT
    objs = objects(folder)
    first, *parts = [o for o in objs if o["kind"] == "ConfigMap"]
    assert "plan.json" not in first["data"] and len(parts) == 2
    pieces = []
    for k, part in enumerate(parts, 1):
        assert part["metadata"]["name"] == f"{first['metadata']['name']}-{k}" and part["immutable"] is True
        (key, value), = part["binaryData"].items()
        assert key == f"plan.json.{k}" and len(value) <= LIMIT
        pieces.append(base64.b64decode(value))
    assert b"".join(pieces) == plan_json
    jobset = next(o for o in objs if o["kind"] == "JobSet")
    for job in jobset["spec"]["replicatedJobs"]:
        volume = next(v for v in job["template"]["spec"]["template"]["spec"]["volumes"] if v["name"] == "areal-files")
        assert volume["projected"]["sources"] == [{"configMap": {"name": o["metadata"]["name"]}} for o in [first] + parts]
    assert problems(objs, "1.33") == []
    mounted = tmp_path / "etc-areal"  # what the projected volume shows the pod: every key a file
    mounted.mkdir()
    for k, piece in enumerate(pieces, 1):
        (mounted / f"plan.json.{k}").write_bytes(piece)
    pods = {"AREAL_NODE_HOSTS": ",".join(f"pod-{n}" for n in range(result.plan.nodes))}  # as the JobSet sets it
    assert load_plan(str(mounted / "plan.json"), pods)["workers"] == result.plan.dump()["workers"]
