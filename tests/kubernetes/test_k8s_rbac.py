"""rbac.example.yaml against the REAL authorizer (tests/kubernetes/cluster.sh): a ServiceAccount bound only to the
compiled Role can submit, read status and logs and stop its run, and nothing more; a request outside the Role is
refused by the API server and `areal` names the permission that is missing."""
from __future__ import annotations

import copy

import pytest
import yaml

from fake_kubelet import LOG
from kube import Kube, KubeError, wait_for
from test_k8s_cluster import Cli, by_component, pods, two_node

RUN = "gsm8k-grpo-async/trial0"


def _role(folder) -> list[dict]:
    return list(yaml.safe_load_all((folder / "rbac.example.yaml").read_text(encoding="utf-8")))


def _bind(kube, namespace: str, folder, account: str) -> str:
    """Create the ServiceAccount, the example Role and its RoleBinding (subject: that account); a token for it."""
    kube.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account}}, namespace)
    role, binding = copy.deepcopy(_role(folder))
    binding["subjects"] = [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]
    kube.create(role)
    kube.create(binding)
    answer = kube.request("POST", kube.path("ServiceAccount", namespace, account, "token"),
                          {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                           "spec": {"expirationSeconds": 3600}})
    return answer["status"]["token"]


@pytest.fixture
def submitter(control_plane, namespace, compile_k8s, tmp_path):
    """(Cli as the ServiceAccount, its token, the compiled two-node folder whose Role it holds)."""
    result, folder = compile_k8s(two_node(name="rb", namespace=namespace))
    assert result.ok
    token = _bind(control_plane.kube, namespace, folder, "submitter")
    cli = Cli(control_plane.kubeconfig(tmp_path / "sa.kubeconfig", token), tmp_path / "home")
    return cli, token, folder


def test_the_example_role_is_enough_for_submit_status_logs_stop(control_plane, namespace, submitter):
    cli, _, folder = submitter
    out = cli("submit", str(folder), "--target", "kubernetes", "--dry-run")
    assert out.returncode == 0, out.stderr
    out = cli("submit", str(folder), "--target", "kubernetes")
    assert out.returncode == 0, out.stderr
    found = by_component(pods(control_plane.kube, namespace, 3, "Running"))
    control_plane.kube.patch("Pod", found["driver"]["metadata"]["name"],
                             {"metadata": {"annotations": {LOG: "step 1\n"}}}, namespace)
    out = cli("status", RUN)
    assert out.returncode == 0 and "running" in out.stdout, (out.stdout, out.stderr)
    out = cli("logs", RUN, "driver/0")
    assert out.returncode == 0 and out.stdout == "step 1\n", (out.stdout, out.stderr)
    out = cli("stop", RUN)
    assert out.returncode == 0 and "deleted JobSet/rb" in out.stdout, out.stderr
    wait_for("the pods gone", lambda: not control_plane.kube.list("Pod", namespace))


def test_nothing_more_than_the_role(control_plane, namespace, submitter):
    """What the API server says the account may do in the namespace is exactly the Role; other requests fail."""
    _, token, folder = submitter
    as_sa = Kube(control_plane.state["server"], token, control_plane.state["ca_file"])
    review = as_sa.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": {"namespace": namespace}})
    granted = {(g, r, v) for rule in review["status"]["resourceRules"] for g in rule.get("apiGroups", [""])
               for r in rule["resources"] for v in rule["verbs"]
               if g not in ("authorization.k8s.io", "authentication.k8s.io")}  # every user's self-reviews
    role = {(g, r, v) for rule in _role(folder)[0]["rules"] for g in rule["apiGroups"] for r in rule["resources"]
            for v in rule["verbs"]}
    assert granted == role
    assert not any(r in ("statefulsets", "services") for _, r, _ in role)  # a JobSet run needs neither
    for method, path in [("GET", as_sa.path("Secret", namespace, "rb-agent-token")),
                         ("GET", as_sa.path("Node")), ("POST", as_sa.path("Pod", namespace)),
                         ("DELETE", as_sa.path("Pod", namespace, "any")),
                         ("GET", as_sa.path("JobSet", "default"))]:
        with pytest.raises(KubeError) as refused:
            as_sa.request(method, path, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}
                          if method == "POST" else None)
        assert refused.value.status == 403, (method, path)


def test_a_request_outside_the_role_is_refused_and_named(control_plane, namespace, submitter, compile_k8s):
    cli, _, _ = submitter
    # another workload needs what this Role does not grant: the API server refuses, areal names the permission
    result, folder = compile_k8s(two_node(driver=False, name="ss", namespace=namespace, workload="statefulset"))
    assert result.ok
    code, said = cli.json("submit", str(folder), "--target", "kubernetes")
    assert code == 1 and said["error"]["kind"] == "denied", said
    message = said["error"]["message"]
    assert "needs verb `create` on `services`" in message and namespace in message, message
    assert 'system:serviceaccount:' in message  # the server's own words follow
    # nothing of the refused submit is left behind
    left = control_plane.kube.list("Secret", namespace, "app.kubernetes.io/instance=ss") + \
        control_plane.kube.list("ConfigMap", namespace, "app.kubernetes.io/instance=ss")
    assert left == []
    # and a namespace the account is not bound in at all
    result, folder = compile_k8s(two_node(name="rb", namespace="default"))
    code, said = cli.json("submit", str(folder), "--target", "kubernetes")
    assert code == 1 and "needs verb `create` on `secrets`" in said["error"]["message"], said
    assert "in namespace default" in said["error"]["message"]
