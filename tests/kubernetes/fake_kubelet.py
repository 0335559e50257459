"""The kubelet of the test cluster's fake GPU nodes (no containers run here): registers the nodes, moves their
pods through their life cycle, and serves the pod-log endpoint that the API server proxies `kubectl logs` to.

Started by cluster.sh (`python3 fake_kubelet.py STATE_DIR`); the integration tests steer it through annotations:
`fake-kubelet.areal/exit-code: "N"` ends a Running pod (restartPolicy Never) with exit code N, and
`fake-kubelet.areal/log` is the text its log endpoint serves. This is a STAND-IN for what a kubelet does (pod
phases, exit codes, logs); the API server, admission, controllers and scheduler around it are the real ones."""
from __future__ import annotations

import json
import signal
import ssl
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kube import Kube, KubeError  # noqa: E402

EXIT_CODE = "fake-kubelet.areal/exit-code"
LOG = "fake-kubelet.areal/log"
H100 = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
GPU_TAINT = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
# name -> (extended resources, labels, taints): two 8 x H100 nodes, one 8 x A100 node (another GPU model, which
# node affinity must avoid), one 16 x Ascend 910B node, one CPU node for drivers.
NODES = {
    "gpu-h100-0": ({"nvidia.com/gpu": "8"}, H100, GPU_TAINT),
    "gpu-h100-1": ({"nvidia.com/gpu": "8"}, H100, GPU_TAINT),
    "gpu-a100-0": ({"nvidia.com/gpu": "8"}, {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}, GPU_TAINT),
    "npu-910b-0": ({"huawei.com/Ascend910": "16"},
                   {"accelerator": "huawei-Ascend910", "accelerator-type": "module-910b-16"},
                   [{"key": "huawei.com/Ascend910", "value": "present", "effect": "NoSchedule"}]),
    "cpu-0": ({}, {}, []),
}


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def register(kube: Kube, port: int) -> None:
    """Each node with its capacity, labels and taints, Ready, its kubelet at 127.0.0.1:port."""
    for name, (devices, labels, taints) in NODES.items():
        capacity = {"cpu": "192", "memory": "2048Gi", "pods": "110", "ephemeral-storage": "1000Gi", **devices}
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", **labels}},
            "spec": {"taints": taints}}
        if kube.find("Node", name) is None:
            kube.create(node)
        kube.patch("Node", name, {"spec": {"taints": taints}})  # without the not-ready taint admission adds
        kube.patch("Node", name, {"status": {
            "capacity": capacity, "allocatable": capacity,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "fake kubelet",
                            "lastHeartbeatTime": now(), "lastTransitionTime": now()}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
            "nodeInfo": {"kubeletVersion": "v1.36.3-fake", "operatingSystem": "linux", "architecture": "amd64",
                         "containerRuntimeVersion": "fake://0", "kernelVersion": "", "osImage": "",
                         "kubeProxyVersion": "", "machineID": "", "systemUUID": "", "bootID": ""}}}, sub="status")


class Pods:
    """One pass over the fake nodes' pods: start the pending, end those asked to, finish the deletions."""

    def __init__(self, kube: Kube):
        self.kube, self.ips = kube, {}

    def _ip(self, uid: str) -> str:
        n = self.ips.setdefault(uid, len(self.ips) + 1)
        return f"10.244.{n // 250}.{n % 250 + 1}"

    def _running(self, pod: dict) -> dict:
        started = now()
        statuses = [{"name": c["name"], "image": c["image"], "imageID": "", "ready": True, "started": True,
                     "restartCount": 0, "state": {"running": {"startedAt": started}}}
                    for c in pod["spec"]["containers"]]
        conditions = [{"type": t, "status": "True", "lastTransitionTime": started}
                      for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]
        ip = self._ip(pod["metadata"]["uid"])
        return {"phase": "Running", "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}], "podIP": ip,
                "podIPs": [{"ip": ip}], "startTime": started, "conditions": conditions,
                "containerStatuses": statuses}

    def _ended(self, pod: dict, code: int) -> dict:
        status, ended = pod["status"], now()
        statuses = [{**c, "ready": False, "started": False, "state": {"terminated": {
            "exitCode": code, "reason": "Completed" if code == 0 else "Error",
            "startedAt": c["state"].get("running", {}).get("startedAt", ended), "finishedAt": ended}}}
            for c in status.get("containerStatuses") or []]
        conditions = [{**c, "status": "False"} if c["type"] in ("Ready", "ContainersReady") else c
                      for c in status.get("conditions") or []]
        return {"phase": "Succeeded" if code == 0 else "Failed", "conditions": conditions,
                "containerStatuses": statuses}

    def step(self) -> None:
        for pod in self.kube.request("GET", "/api/v1/pods").get("items") or []:
            meta, spec = pod["metadata"], pod["spec"]
            if spec.get("nodeName") not in NODES:
                continue
            phase = (pod.get("status") or {}).get("phase")
            try:
                if meta.get("deletionTimestamp"):  # the kubelet confirms a deletion once its containers are gone
                    self.kube.delete("Pod", meta["name"], meta["namespace"], query={"gracePeriodSeconds": "0"})
                elif phase == "Pending" and not (pod["status"].get("containerStatuses")):
                    self.kube.patch("Pod", meta["name"], {"status": self._running(pod)}, meta["namespace"], "status")
                elif phase == "Running" and EXIT_CODE in (meta.get("annotations") or {}) \
                        and spec.get("restartPolicy") == "Never":
                    code = int(meta["annotations"][EXIT_CODE])
                    self.kube.patch("Pod", meta["name"], {"status": self._ended(pod, code)}, meta["namespace"],
                                    "status")
            except KubeError as exc:
                if exc.status not in (404, 409):  # gone or changed meanwhile: the next pass sees it again
                    print(f"fake kubelet: {meta['namespace']}/{meta['name']}: {exc}", file=sys.stderr, flush=True)


def log_handler(kube: Kube):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            url = urlsplit(self.path)
            parts = url.path.strip("/").split("/")
            if len(parts) != 4 or parts[0] != "containerLogs":
                return self._send(404, "not a path of this fake kubelet\n")
            try:
                pod = kube.get("Pod", parts[2], parts[1])
            except KubeError as exc:
                return self._send(exc.status, exc.body)
            lines = ((pod["metadata"].get("annotations") or {}).get(LOG) or "").splitlines(keepends=True)
            tail = parse_qs(url.query).get("tailLines")
            self._send(200, "".join(lines[-int(tail[0]):] if tail else lines))

        def _send(self, code: int, text: str):
            data = text.encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
    return Handler


def main(state_dir: str) -> None:
    state = json.loads((Path(state_dir) / "cluster.json").read_text(encoding="utf-8"))
    kube = Kube.from_state(state_dir)
    server = ThreadingHTTPServer(("127.0.0.1", state["kubelet_port"]), log_handler(kube))
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(state["kubelet_cert"], state["kubelet_key"])
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    register(kube, state["kubelet_port"])
    print(f"fake kubelet: nodes {', '.join(NODES)} registered; logs on 127.0.0.1:{state['kubelet_port']}",
          flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    pods = Pods(kube)
    while not stop.is_set():
        try:
            pods.step()
        except (KubeError, OSError) as exc:
            print(f"fake kubelet: {exc}", file=sys.stderr, flush=True)
        stop.wait(0.2)


if __name__ == "__main__":
    main(sys.argv[1])
