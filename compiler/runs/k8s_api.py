"""A thin layer over the `kubernetes` client for runs/kubernetes.py: one call shape, JSON in and out, errors as
OperatorErrors that say what the API server refused (403 names the verb, the resource and the namespace).

The client is imported here, lazily, only by the operator verbs (`areal compile` never loads it)."""
from __future__ import annotations

import json
import os

from areal_compiler.runs.base import OperatorError

# kind -> (API path prefix, plural); every object the Kubernetes target writes or the verbs read
KINDS = {
    "ConfigMap": ("/api/v1", "configmaps"), "Secret": ("/api/v1", "secrets"), "Service": ("/api/v1", "services"),
    "Pod": ("/api/v1", "pods"), "Event": ("/api/v1", "events"),
    "StatefulSet": ("/apis/apps/v1", "statefulsets"), "JobSet": ("/apis/jobset.x-k8s.io/v1alpha2", "jobsets"),
}


def connect(address: str | None = None):
    """An ApiClient from $KUBECONFIG (or ~/.kube/config), else the in-cluster service account; `address`
    overrides the server."""
    try:
        import kubernetes
    except ImportError:
        raise OperatorError("client_missing", "the Kubernetes verbs need the kubernetes client: "
                                              "pip install 'areal-compile[kubernetes]'") from None
    try:
        # $KUBECONFIG read now: the client reads it once, at import
        client = kubernetes.config.new_client_from_config(config_file=os.environ.get("KUBECONFIG") or None)
    except (kubernetes.config.ConfigException, OSError, TypeError, ValueError):
        try:
            kubernetes.config.load_incluster_config()
            client = kubernetes.client.ApiClient()
        except kubernetes.config.ConfigException:
            raise OperatorError("no_kubeconfig", "no Kubernetes credentials: set KUBECONFIG (or ~/.kube/config) "
                                                 "or run inside a pod with a service account", "unavailable") from None
    if address:
        client.configuration.host = address
    return client


class Api:
    """JSON requests to one namespace; every failure becomes an OperatorError naming verb, kind and namespace."""

    def __init__(self, client, namespace: str):
        self.client, self.namespace = client, namespace

    def _path(self, kind: str, name: str = "", sub: str = "") -> str:
        prefix, plural = KINDS[kind]
        return "/".join(p for p in (f"{prefix}/namespaces/{self.namespace}/{plural}", name, sub) if p)

    def call(self, verb: str, kind: str, name: str = "", body=None, query=None, sub: str = "", raw: bool = False):
        from urllib3.exceptions import HTTPError

        method = {"create": "POST", "get": "GET", "list": "GET", "delete": "DELETE"}[verb]
        try:
            request = self.client.param_serialize(method, self._path(kind, name, sub),
                                                  query_params=list((query or {}).items()),
                                                  header_params={"Content-Type": "application/json",
                                                                 "Accept": "application/json"},
                                                  body=body, auth_settings=["BearerToken"])
            resp = self.client.call_api(*request[:4])
            data = (resp.read() or b"").decode("utf-8", "replace")
        except (HTTPError, OSError) as exc:
            raise OperatorError("api_unreachable", f"the Kubernetes API server at {self.client.configuration.host} "
                                                   f"did not answer: {exc}", "unavailable", retryable=True) from None
        if resp.status >= 400:
            raise _error(resp.status, data, verb, kind, name, self.namespace)
        return data if raw else json.loads(data or "{}")

    def items(self, kind: str, selector: str) -> list[dict]:
        return self.call("list", kind, query={"labelSelector": selector}).get("items") or []


def _error(status: int, body: str, verb: str, kind: str, name: str, namespace: str) -> OperatorError:
    try:
        message = json.loads(body or "{}").get("message") or body
    except (ValueError, AttributeError):
        message = body
    what = f"{kind.lower()} {name}".strip()
    plural = KINDS[kind][1]
    if status in (401, 403):
        return OperatorError("forbidden", f"the API server refused to {verb} {what} in namespace {namespace} "
                                          f"(needs verb `{verb}` on `{plural}`; see rbac.example.yaml): {message}",
                             "denied")
    if status == 404:
        hint = " (is the JobSet controller installed? kubectl get crd jobsets.jobset.x-k8s.io)" \
            if kind == "JobSet" and not name else ""
        return OperatorError("not_found", f"{what} not found in namespace {namespace}{hint}: {message}", "not_found")
    if status == 409:
        return OperatorError("exists", f"{what} already exists in namespace {namespace}: stop the run first "
                                       f"(areal stop) or delete it: {message}", "conflict")
    if status in (400, 422):
        return OperatorError("rejected", f"the API server rejected {what}: {message}", "invalid")
    return OperatorError("api_error", f"{verb} {what} in namespace {namespace}: HTTP {status}: {message}",
                         "unavailable", retryable=status >= 500)
