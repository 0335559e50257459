"""Every example's Kubernetes manifests pass the three offline layers; mutations fail the layer meant to catch them.

No API server can run here: these layers are what can be checked offline (docs/targets/kubernetes.md)."""
from __future__ import annotations

import copy
import subprocess
import sys

import pytest

from helpers import EXAMPLES, ROOT
from manifests import STRICT_SCHEMA, layer_cluster, layer_crd, layer_models, layer_server, objects, problems

VERSION = "1.33"


@pytest.mark.parametrize("workload", ["jobset", "statefulset"])
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_passes_every_layer(example, workload, compile_k8s):
    result, folder = compile_k8s(example, workload=workload)
    if workload == "statefulset" and "\ndriver:" in example.read_text(encoding="utf-8"):
        assert [d.message for d in result.diagnostics if d.is_error] == [
            "kubernetes: kubernetes.workload statefulset restarts every pod forever, so the driver would run again "
            "after it ends: use workload jobset"]
        return
    assert result.ok, [d.message for d in result.diagnostics]
    objs = objects(folder)
    kinds = sorted({o["kind"] for o in objs})
    expected = ["ConfigMap", "JobSet"] if workload == "jobset" else ["ConfigMap", "Service", "StatefulSet"]
    assert kinds == sorted(expected + ["Role", "RoleBinding"])
    assert problems(objs, VERSION) == []


def test_oldest_supported_version_validates_too(compile_k8s):
    _, folder = compile_k8s(ROOT / "examples" / "two-node-decoupled.yaml", version="1.28")
    assert problems(objects(folder), "1.28") == []


def test_strict_schema_is_the_scripts_output():
    """Drift test: the committed schema is exactly what crd_to_schema.py makes of the vendored CRD."""
    out = subprocess.run([sys.executable, str(ROOT / "schemas" / "vendor" / "crd_to_schema.py")], capture_output=True,
                         text=True, check=True)
    assert out.stdout == STRICT_SCHEMA.read_text(encoding="utf-8"), \
        "regenerate: python schemas/vendor/crd_to_schema.py > schemas/vendor/jobset-v1alpha2.strict.schema.json"


def test_vendored_crd_is_the_reference_copy():
    shared = ROOT.parent / "shared" / "reference" / "vendor" / "jobset-v0.12.0-crd.yaml"
    if not shared.is_file():
        pytest.skip("../shared is not beside this checkout")
    assert (ROOT / "schemas" / "vendor" / "jobset-v0.12.0-crd.yaml").read_bytes() == shared.read_bytes()


@pytest.fixture
def jobset(compile_k8s):
    _, folder = compile_k8s(ROOT / "examples" / "two-node-decoupled.yaml")
    objs = objects(folder)
    return objs, next(o for o in objs if o["kind"] == "JobSet")


def _pod_spec(obj):
    return obj["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]


def test_unknown_field_fails_all_three_layers(jobset):
    _, obj = jobset
    bad = copy.deepcopy(obj)
    _pod_spec(bad)["containers"][0]["imagePullPolicyy"] = "Always"
    assert layer_crd(bad) and layer_cluster(bad, VERSION) and layer_models(bad)
    bad = copy.deepcopy(obj)
    bad["spec"]["successPolicy"]["targetJobs"] = ["driver"]  # a JobSet field only the CRD knows
    assert any("targetJobs" in p for p in layer_crd(bad))


def test_wrong_types_and_bad_enums_fail(jobset):
    _, obj = jobset
    bad = copy.deepcopy(obj)
    bad["spec"]["replicatedJobs"][0]["template"]["spec"]["backoffLimit"] = "zero"
    assert layer_crd(bad) and layer_cluster(bad, VERSION) and layer_models(bad)
    bad = copy.deepcopy(obj)
    bad["spec"]["successPolicy"]["operator"] = "Most"
    assert any("Most" in p for p in layer_crd(bad))
    bad = copy.deepcopy(obj)
    bad["spec"]["failurePolicy"]["restartStrategy"] = "Sometimes"
    assert any("Sometimes" in p for p in layer_crd(bad))
    bad = copy.deepcopy(obj)
    del _pod_spec(bad)["containers"][0]["name"]  # required by every layer's Container
    assert layer_crd(bad) and layer_cluster(bad, VERSION) and layer_models(bad)


def test_server_rules_catch_names_quantities_labels_and_expansion(jobset):
    objs, obj = jobset
    others = [o for o in objs if o is not obj]
    cases = {
        "exceeds 63": lambda o: o["metadata"].update(name="a" * 60),
        "not a Kubernetes quantity": lambda o: _pod_spec(o)["containers"][0]["resources"]["requests"].update(
            memory="16 GB"),
        "label value": lambda o: o["metadata"]["labels"].update({"app.kubernetes.io/instance": "a b"}),
        "would expand": lambda o: _pod_spec(o)["containers"][0]["env"][0].update(value="$(HOME)"),
        "requests == limits": lambda o: _pod_spec(o)["containers"][0]["resources"]["limits"].update(
            {"nvidia.com/gpu": "4"}),
        "must not be restarted": lambda o: _pod_spec(o).update(restartPolicy="OnFailure"),
        "not shipped": lambda o: _pod_spec(o)["volumes"][0]["configMap"].update(name="elsewhere"),
    }
    assert layer_server(objs) == []
    for needle, mutate in cases.items():
        bad = copy.deepcopy(obj)
        mutate(bad)
        found = layer_server(others + [bad])
        assert any(needle in p for p in found), (needle, found)


def test_statefulset_selector_and_service_rules(compile_k8s):
    _, folder = compile_k8s(ROOT / "examples" / "two-node-decoupled.yaml", workload="statefulset")
    objs = objects(folder)
    sts = next(o for o in objs if o["kind"] == "StatefulSet")
    bad = copy.deepcopy(sts)
    bad["spec"]["selector"]["matchLabels"]["areal/component"] = "other"
    assert any("selector" in p for p in layer_server([o for o in objs if o is not sts] + [bad]))
    bad = copy.deepcopy(sts)
    bad["spec"]["serviceName"] = "nowhere"
    assert any("headless Service" in p for p in layer_server([o for o in objs if o is not sts] + [bad]))
    for mutate in (lambda o: o["spec"].update(podManagementPolicy="Sometimes"),
                   lambda o: o["spec"]["template"]["spec"].update(restartPolicy="Sometimes"),
                   lambda o: o["spec"]["template"]["spec"]["securityContext"]["seccompProfile"].update(type="Off")):
        bad = copy.deepcopy(sts)
        mutate(bad)  # the published schemas leave core enums as strings: only the server rules catch these
        assert any("is not one of" in p for p in layer_server([o for o in objs if o is not sts] + [bad]))
