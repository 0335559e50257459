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
    overrides the server. A kubeconfig that is missing or broken is named, with where it is broken."""
    try:
        import kubernetes
    except ImportError:
        raise OperatorError("client_missing", "the Kubernetes verbs need the kubernetes client: "
                                              "pip install 'areal-compile[kubernetes]'") from None
    files = _kubeconfig_files()
    if files:
        try:
            # read now, not from the client's module-level default (it reads $KUBECONFIG once, at import)
            client = kubernetes.config.new_client_from_config(config_file=os.pathsep.join(files))
        except (kubernetes.config.ConfigException, OSError, TypeError, ValueError, KeyError, AttributeError) as exc:
            raise OperatorError("bad_kubeconfig", f"{os.pathsep.join(files)} is not a usable kubeconfig: {exc}",
                                "invalid") from None
    else:
        try:
            kubernetes.config.load_incluster_config()
            client = kubernetes.client.ApiClient()
        except kubernetes.config.ConfigException:
            raise OperatorError("no_kubeconfig", "no Kubernetes credentials: set KUBECONFIG (or create "
                                                 "~/.kube/config) or run inside a pod with a service account",
                                "unavailable") from None
    if address:
        client.configuration.host = address
    return client


def _kubeconfig_files() -> list[str]:
    """The kubeconfig files to read, each checked to be a YAML mapping: $KUBECONFIG's (a list, like kubectl's: the
    files that exist), else ~/.kube/config if it exists; [] for none (then the in-cluster account)."""
    import yaml

    named = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    if named:
        files = [p for p in named if os.path.isfile(os.path.expanduser(p))]
        if not files:
            raise OperatorError("no_kubeconfig", f"KUBECONFIG names {', '.join(named)}, which "
                                                 f"{'does' if len(named) == 1 else 'do'} not exist: point it at "
                                                 "your cluster's kubeconfig", "not_found")
    else:
        default = os.path.expanduser("~/.kube/config")
        files = [default] if os.path.isfile(default) else []
    for path in files:
        try:
            with open(os.path.expanduser(path), encoding="utf-8") as fh:
                data = yaml.safe_load(fh)
        except (OSError, UnicodeDecodeError) as exc:
            raise OperatorError("bad_kubeconfig", f"cannot read the kubeconfig {path}: {exc}", "invalid") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
            raise OperatorError("bad_kubeconfig", f"{where}: the kubeconfig is not valid YAML "
                                                  f"({getattr(exc, 'problem', None) or exc}): fix it or point "
                                                  "KUBECONFIG at another", "invalid") from None
        if not isinstance(data, dict):
            held = "nothing" if data is None else f"a {type(data).__name__}"
            raise OperatorError("bad_kubeconfig", f"{path}: a kubeconfig is a mapping (clusters, users, contexts), "
                                                  f"this file holds {held}", "invalid")
    return files


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
            raise _error(resp.status, data, verb, kind, name, self, sub)
        if raw:
            return data
        try:
            answer = json.loads(data or "{}")
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise self.bad_answer(f"{verb} {kind.lower()} {name}".strip(), f"not a JSON object: {data[:200]!r}")
        return answer

    def items(self, kind: str, selector: str) -> list[dict]:
        """The listed objects; each must be an object with a metadata.name, as every Kubernetes list item is."""
        items = self.call("list", kind, query={"labelSelector": selector}).get("items") or []
        if not isinstance(items, list) or not all(isinstance(i, dict) and isinstance(i.get("metadata"), dict)
                                                  and isinstance(i["metadata"].get("name"), str) for i in items):
            raise self.bad_answer(f"list {KINDS[kind][1]}", f"items that are not objects with a name: {items!r:.200}")
        return items

    def bad_answer(self, request: str, what: str) -> OperatorError:
        """The server answered something no Kubernetes API server sends: said, never a traceback."""
        return OperatorError("bad_answer", f"the Kubernetes API server at {self.client.configuration.host} answered "
                                           f"`{request}` in namespace {self.namespace} with {what}: is that address "
                                           "a Kubernetes API server?", "unavailable")


def _error(status: int, body: str, verb: str, kind: str, name: str, api: Api, sub: str = "") -> OperatorError:
    """The API server's refusal, in its own words, with what it means for the user."""
    try:
        message = json.loads(body or "{}").get("message") or body
    except (ValueError, AttributeError):  # not a Kubernetes Status: the body as it came
        message = body[:300]
    what, namespace = f"{kind.lower()} {name}".strip(), api.namespace
    request, plural = f"{verb} {what}", KINDS[kind][1] + (f"/{sub}" if sub else "")
    if status == 401:
        return OperatorError("unauthorized", f"the API server did not accept the credentials of the kubeconfig "
                                             f"(HTTP 401) to {request}: renew them: {message}", "denied")
    if status == 403:
        return OperatorError("forbidden", f"the API server refused to {request} in namespace {namespace} "
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
    return OperatorError("api_error", f"the Kubernetes API server at {api.client.configuration.host} answered "
                                      f"`{request}` in namespace {namespace} with HTTP {status}: {message}",
                         "unavailable", retryable=status >= 500)
