"""A small stdlib client for the test control plane (cluster.sh's kubeconfig): JSON over HTTPS with a bearer token.

Used by cluster.sh (bootstrap), fake_kubelet.py and the integration tests to act as the cluster's administrator;
`areal` itself is only ever driven through its CLI. Runs under any python3 (no packages)."""
from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

# kind -> (API path prefix, plural, namespaced)
KINDS = {
    "Namespace": ("/api/v1", "namespaces", False), "Node": ("/api/v1", "nodes", False),
    "Pod": ("/api/v1", "pods", True), "Service": ("/api/v1", "services", True),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True), "Event": ("/api/v1", "events", True),
    "ConfigMap": ("/api/v1", "configmaps", True), "Secret": ("/api/v1", "secrets", True),
    "Job": ("/apis/batch/v1", "jobs", True), "StatefulSet": ("/apis/apps/v1", "statefulsets", True),
    "JobSet": ("/apis/jobset.x-k8s.io/v1alpha2", "jobsets", True),
    "CustomResourceDefinition": ("/apis/apiextensions.k8s.io/v1", "customresourcedefinitions", False),
    "MutatingWebhookConfiguration": ("/apis/admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", False),
    "ValidatingWebhookConfiguration": ("/apis/admissionregistration.k8s.io/v1", "validatingwebhookconfigurations",
                                       False),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
}


class KubeError(Exception):
    def __init__(self, status: int, body: str):
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status, self.body = status, body


class Kube:
    """One server, one token, the cluster CA: get/list/create/patch/delete by kind and name."""

    def __init__(self, server: str, token: str, ca_file: str):
        self.server, self.token = server.rstrip("/"), token
        self.tls = ssl.create_default_context(cafile=ca_file)

    @classmethod
    def from_state(cls, state_dir: str | Path) -> "Kube":
        """The administrator of the cluster whose state cluster.sh keeps in state_dir."""
        state = json.loads((Path(state_dir) / "cluster.json").read_text(encoding="utf-8"))
        return cls(state["server"], state["admin_token"], state["ca_file"])

    def path(self, kind: str, namespace: str | None = None, name: str = "", sub: str = "") -> str:
        prefix, plural, namespaced = KINDS[kind]
        base = f"{prefix}/namespaces/{namespace}/{plural}" if namespaced and namespace else f"{prefix}/{plural}"
        return "/".join(p for p in (base, name, sub) if p)

    def request(self, method: str, path: str, body=None, query: dict | None = None, content_type: str =
                "application/json", raw: bool = False, timeout: float = 30):
        url = self.server + path + (f"?{urlencode(query)}" if query else "")
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": content_type, "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self.tls, timeout=timeout) as resp:
                text = resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            raise KubeError(exc.code, exc.read().decode("utf-8", "replace")) from None
        return text if raw else json.loads(text or "{}")

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict:
        return self.request("GET", self.path(kind, namespace, name))

    def find(self, kind: str, name: str, namespace: str | None = None) -> dict | None:
        try:
            return self.get(kind, name, namespace)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, kind: str, namespace: str | None = None, selector: str = "") -> list[dict]:
        query = {"labelSelector": selector} if selector else None
        return self.request("GET", self.path(kind, namespace), query=query).get("items") or []

    def create(self, obj: dict, namespace: str | None = None, query: dict | None = None) -> dict:
        namespace = namespace or obj.get("metadata", {}).get("namespace")
        return self.request("POST", self.path(obj["kind"], namespace), obj, query)

    def ensure(self, obj: dict) -> dict:
        """Create, or replace what is there (keeping its resourceVersion): cluster.sh's bootstrap objects."""
        meta = obj["metadata"]
        current = self.find(obj["kind"], meta["name"], meta.get("namespace"))
        if current is None:
            return self.create(obj)
        obj = {**obj, "metadata": {**meta, "resourceVersion": current["metadata"]["resourceVersion"]}}
        return self.request("PUT", self.path(obj["kind"], meta.get("namespace"), meta["name"]), obj)

    def patch(self, kind: str, name: str, patch: dict, namespace: str | None = None, sub: str = "") -> dict:
        return self.request("PATCH", self.path(kind, namespace, name, sub), patch,
                            content_type="application/merge-patch+json")

    def delete(self, kind: str, name: str, namespace: str | None = None, query: dict | None = None) -> None:
        try:
            self.request("DELETE", self.path(kind, namespace, name), query=query)
        except KubeError as exc:
            if exc.status != 404:
                raise


def wait_for(what: str, probe, timeout: float = 120, every: float = 0.25):
    """probe()'s first truthy answer, polled; on timeout an AssertionError naming `what` and the last answer."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last answer: {last!r})")
