"""Installs the JobSet API into the test control plane: the vendored v0.12.0 CRD and the controller's webhooks.

Run by cluster.sh up (`python3 bootstrap.py STATE_DIR`), before the JobSet controller starts. The webhook
configurations are upstream's (config/components/webhook at v0.12.0, with its pod objectSelector patch) except
that they call the controller at https://127.0.0.1:PORT with the cluster CA: out of a cluster there is no Service
to route to, so cluster.sh makes the serving certificate itself instead of the controller's internal cert manager
(which names only the in-cluster Service's DNS name)."""
from __future__ import annotations

import base64
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kube import Kube, KubeError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "schemas" / "vendor" / "jobset-v0.12.0-crd.yaml"
GROUP = {"apiGroups": ["jobset.x-k8s.io"], "apiVersions": ["v1alpha2"], "resources": ["jobsets"]}
POD = {"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "operations": ["CREATE"]}
POD_SELECTOR = {"matchExpressions": [{"key": "jobset.sigs.k8s.io/jobset-name", "operator": "Exists"}]}


def _hook(name: str, path: str, rule: dict, url: str, ca: str, selector: dict | None = None) -> dict:
    out = {"name": name, "admissionReviewVersions": ["v1"], "sideEffects": "None", "failurePolicy": "Fail",
           "clientConfig": {"url": url + path, "caBundle": ca}, "rules": [rule]}
    return {**out, "objectSelector": selector} if selector else out


def webhooks(url: str, ca: str) -> list[dict]:
    meta = {"apiVersion": "admissionregistration.k8s.io/v1"}
    mutating = [_hook("mjobset.kb.io", "/mutate-jobset-x-k8s-io-v1alpha2-jobset", {**GROUP, "operations": ["CREATE"]},
                      url, ca),
                _hook("mpod.kb.io", "/mutate--v1-pod", POD, url, ca, POD_SELECTOR)]
    validating = [_hook("vjobset.kb.io", "/validate-jobset-x-k8s-io-v1alpha2-jobset",
                        {**GROUP, "operations": ["CREATE", "UPDATE"]}, url, ca),
                  _hook("vpod.kb.io", "/validate--v1-pod", POD, url, ca, POD_SELECTOR)]
    return [{**meta, "kind": "MutatingWebhookConfiguration", "metadata": {"name": "jobset-mutating-webhook"},
             "webhooks": mutating},
            {**meta, "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "jobset-validating-webhook"},
             "webhooks": validating}]


def _served(kube: Kube) -> bool:
    """The CRD is Established and API discovery lists jobsets."""
    status = kube.get("CustomResourceDefinition", "jobsets.jobset.x-k8s.io").get("status") or {}
    if not any(c["type"] == "Established" and c["status"] == "True" for c in status.get("conditions") or []):
        return False
    try:
        found = kube.request("GET", "/apis/jobset.x-k8s.io/v1alpha2").get("resources") or []
    except KubeError:
        return False
    return any(r.get("name") == "jobsets" for r in found)


def main(state_dir: str) -> None:
    import yaml  # the CRD is YAML; cluster.sh runs this with the project's venv

    state = json.loads((Path(state_dir) / "cluster.json").read_text(encoding="utf-8"))
    kube = Kube.from_state(state_dir)
    crd = yaml.safe_load(CRD.read_text(encoding="utf-8"))
    crd["metadata"].pop("creationTimestamp", None)
    kube.ensure(crd)
    deadline = time.monotonic() + 60
    while not _served(kube):  # the controller exits if discovery does not list its API yet
        if time.monotonic() > deadline:
            raise SystemExit("the JobSet CRD was not served within 60 s")
        time.sleep(0.2)
    ca = base64.b64encode(Path(state["ca_file"]).read_bytes()).decode()
    for obj in webhooks(f"https://127.0.0.1:{state['webhook_port']}", ca):
        kube.ensure(obj)
    print(f"JobSet CRD {crd['metadata']['name']} established; webhooks point at 127.0.0.1:{state['webhook_port']}")


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except KubeError as exc:
        raise SystemExit(f"bootstrap: {exc}") from None
