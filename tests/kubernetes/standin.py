"""A STAND-IN for the Kubernetes API server (no real one can run on these machines): an http.server on 127.0.0.1
speaking just enough of the REST API for runs/kubernetes.py: create (with dryRun), get, list by label, delete,
pod logs, bearer-token auth and per-verb refusals (403). It validates nothing beyond the shapes it needs;
the manifests themselves are validated offline by manifests.py. Tests put pods, statuses and events in `objects`."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

TOKEN = "standin-token"


class Store:
    def __init__(self):
        self.objects: dict[tuple[str, str], dict[str, dict]] = {}  # (plural, namespace) -> name -> object
        self.logs: dict[str, str] = {}  # pod name -> log text
        self.forbidden: set[tuple[str, str]] = set()  # (verb, plural) answered 403
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, query)
        self.lock = threading.Lock()

    def put(self, plural: str, namespace: str, obj: dict) -> None:
        with self.lock:
            self.objects.setdefault((plural, namespace), {})[obj["metadata"]["name"]] = obj


def _route(path: str) -> tuple[str, str, str, str]:
    """(namespace, plural, name, sub) of /api/v1/namespaces/NS/PLURAL[/NAME[/SUB]] or /apis/G/V/namespaces/..."""
    parts = path.strip("/").split("/")
    at = parts.index("namespaces")
    rest = parts[at + 1:] + ["", "", "", ""]
    return rest[0], rest[1], rest[2], rest[3]


def _matches(obj: dict, selector: str) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(labels.get(k) == v for k, _, v in (term.partition("=") for term in selector.split(",") if term))


class Handler(BaseHTTPRequestHandler):
    store: Store

    def log_message(self, *args):
        pass

    def _send(self, code: int, body) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _status(self, code: int, reason: str, message: str) -> None:
        self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
                          "message": message, "code": code})

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.store.requests.append((method, url.path, query))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._status(401, "Unauthorized", "Unauthorized")
        ns, plural, name, sub = _route(url.path)
        verb = {"POST": "create", "DELETE": "delete"}.get(method, "get" if name else "list")
        if (verb, plural) in self.store.forbidden:
            return self._status(403, "Forbidden", f'{plural} is forbidden: User "alice" cannot {verb} resource '
                                                  f'"{plural}" in the namespace "{ns}"')
        bucket = self.store.objects.setdefault((plural, ns), {})
        if method == "POST":
            obj = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            if obj["metadata"]["name"] in bucket:
                return self._status(409, "AlreadyExists", f'{plural} "{obj["metadata"]["name"]}" already exists')
            if query.get("dryRun") != "All":
                self.store.put(plural, ns, obj)
            return self._send(201, obj)
        if sub == "log":
            return self._send(200, self.store.logs.get(name, "")) if name in bucket else \
                self._status(404, "NotFound", f'pods "{name}" not found')
        if name and name not in bucket:
            return self._status(404, "NotFound", f'{plural} "{name}" not found')
        if method == "DELETE":
            with self.store.lock:
                del bucket[name]
            return self._send(200, {"kind": "Status", "status": "Success"})
        if name:
            return self._send(200, bucket[name])
        items = [o for o in bucket.values() if _matches(o, query.get("labelSelector", ""))]
        return self._send(200, {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items})

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")


class StandIn:
    """Start on 127.0.0.1 (a free port), write a kubeconfig for it, stop by shutting the server down."""

    def __init__(self, tmp_path):
        self.store = Store()
        handler = type("BoundHandler", (Handler,), {"store": self.store})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.kubeconfig = tmp_path / "kubeconfig"
        self.kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "standin",
            "clusters": [{"name": "standin", "cluster": {"server": self.url}}],
            "users": [{"name": "alice", "user": {"token": TOKEN}}],
            "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "alice"}}]}))

    def close(self):
        self.server.shutdown()
        self.server.server_close()
