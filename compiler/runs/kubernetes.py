"""Running a compiled Kubernetes folder: submit (token Secret, then the manifests), state, details, logs, stop.

Called by the operator verbs through the target registry (`areal submit --target kubernetes`, status, logs, stop).
Talks to the API server with the `kubernetes` client (runs/k8s_api.py, imported only here); tested against a
stand-in API server (tests/kubernetes/standin.py), since no real one can run on the development machines."""
from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Iterator

import yaml

from areal_compiler.runs.base import OperatorError, RunBackend, RunState

ORDER = ("ConfigMap", "Service", "StatefulSet", "JobSet")  # what a submit creates, in this order
STOP_ORDER = ("JobSet", "StatefulSet", "Service", "ConfigMap", "Secret")


def _read(folder: Path) -> tuple[dict, list[dict]]:
    """(the plan, the objects the kustomization lists) of a compiled folder."""
    try:
        plan = json.loads((folder / "plan.json").read_text(encoding="utf-8"))
        resources = yaml.safe_load((folder / "kustomization.yaml").read_text(encoding="utf-8"))["resources"]
        objs = [o for f in resources for o in yaml.safe_load_all((folder / f).read_text(encoding="utf-8")) if o]
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise OperatorError("target_incomplete", f"{folder} is not a compiled kubernetes folder ({exc}): "
                                                 "compile with `areal compile --target kubernetes`") from None
    return plan, sorted(objs, key=lambda o: ORDER.index(o["kind"]))


class Backend(RunBackend):
    """Kubernetes runs: the objects carry app.kubernetes.io/instance=<name>; everything is found by that label."""

    target = "kubernetes"

    def _api(self, record, address: str | None = None):
        from areal_compiler.runs.k8s_api import Api, connect

        return Api(connect(address or record.job.get("address")), record.job["namespace"])

    def submit(self, folder: Path, record, dry_run: bool = False, address: str | None = None) -> dict:
        """Create the agent token Secret (a fresh random token, never in the artifact), then every object; with
        dry_run the API server checks each create (dryRun=All) and stores nothing."""
        plan, objs = _read(Path(folder))
        workload = next(o for o in objs if o["kind"] in ("JobSet", "StatefulSet"))
        labels = workload["metadata"]["labels"]
        name, namespace = labels["app.kubernetes.io/instance"], workload["metadata"]["namespace"]
        record.job = {"namespace": namespace, "name": name, "workload": workload["kind"],
                      "selector": f"app.kubernetes.io/instance={name}", **({"address": address} if address else {})}
        api = self._api(record, address)
        query = {"dryRun": "All"} if dry_run else {}
        token = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                 "metadata": {"name": f"{name}-agent-token", "namespace": namespace,
                              "labels": {k: v for k, v in labels.items() if k.startswith("app.kubernetes.io/")}},
                 "stringData": {"token": secrets.token_hex(32)}}
        created = []
        for obj in [token] + objs:
            try:
                api.call("create", obj["kind"], body=obj, query=query)
            except OperatorError as exc:
                if not (exc.code == "exists" and obj["kind"] == "ConfigMap"):  # content-named: the same bytes
                    raise
            created.append(f"{obj['kind']}/{obj['metadata']['name']}")
        if dry_run:
            return {"verdict": f"the API server would accept {', '.join(created)} (server-side dry run)",
                    "objects": created}
        from areal_compiler.runs.registry import save

        save(record)
        return {"namespace": namespace, "name": name, "objects": created}

    def _workload(self, api, record) -> dict | None:
        try:
            return api.call("get", record.job["workload"], record.job["name"])
        except OperatorError as exc:
            if exc.code == "not_found":
                return None
            raise

    def state(self, record) -> RunState:
        if record.outcome:
            return RunState(record.outcome)
        if not record.job.get("name"):
            return RunState.CRASHED
        try:
            api = self._api(record)
            workload = self._workload(api, record)
            pods = api.items("Pod", record.job["selector"])
        except OperatorError:
            return RunState.UNKNOWN
        state = _state(workload, pods)
        if state.terminal:
            from areal_compiler.runs.registry import save

            record.outcome = state.value
            record.exit_code = _driver_exit(pods) if state != RunState.STOPPED else None
            save(record)
        return state

    def details(self, record) -> dict:
        """JobSet conditions and restarts, each pod's phase and containers (exit codes, waiting reasons such as
        ImagePullBackOff, terminated reasons such as OOMKilled), recent events, the driver's exit code."""
        try:
            api = self._api(record)
            workload = self._workload(api, record) or {}
            pods = api.items("Pod", record.job["selector"])
            events = api.call("list", "Event").get("items") or []
        except OperatorError as exc:
            return {"error": exc.message}
        names = {p["metadata"]["name"] for p in pods} | {record.job["name"]}
        mine = [e for e in events if any(e.get("involvedObject", {}).get("name", "").startswith(n) for n in names)]
        status = workload.get("status") or {}
        return {"namespace": record.job["namespace"], "name": record.job["name"], "workload": record.job["workload"],
                "conditions": [{k: c.get(k) for k in ("type", "status", "reason", "message")}
                               for c in status.get("conditions") or []],
                "restarts": status.get("restarts", 0), "pods": [_pod_row(p) for p in pods],
                "events": [{"object": e.get("involvedObject", {}).get("name"), "type": e.get("type"),
                            "reason": e.get("reason"), "message": e.get("message")} for e in mine[-20:]],
                "driver_exit_code": _driver_exit(pods)}

    def stop(self, record, force: bool) -> str:
        """Delete every object of the run by its label (pods get SIGTERM and their grace period)."""
        api = self._api(record)
        deleted = []
        for kind in STOP_ORDER:
            for obj in api.items(kind, record.job["selector"]):
                api.call("delete", kind, obj["metadata"]["name"], query={"propagationPolicy": "Background"})
                deleted.append(f"{kind}/{obj['metadata']['name']}")
        return f"deleted {', '.join(deleted)}" if deleted else "already stopped"

    def log_files(self, record) -> dict[str, Path]:
        """Pods stand in for files: a non-empty answer tells the CLI there is something to read."""
        try:
            return {p["metadata"]["name"]: Path(p["metadata"]["name"])
                    for p in self._api(record).items("Pod", record.job["selector"])}
        except OperatorError:
            return {}

    def logs(self, record, worker: str | None, tail: int | None, follow: bool, load) -> Iterator[tuple[str, str]]:
        """Each pod's log through the API; node pods prefix every line `ROLE/INDEX | `, the driver's pod is
        driver/0. Following is left to `kubectl logs -f -l app.kubernetes.io/instance=<name>`."""
        if follow:
            raise OperatorError("not_supported", "following Kubernetes logs: use kubectl logs -f -l "
                                                 f"{record.job['selector']} -n {record.job['namespace']}")
        api = self._api(record)
        for pod in sorted(api.items("Pod", record.job["selector"]), key=lambda p: p["metadata"]["name"]):
            component = pod["metadata"].get("labels", {}).get("areal/component")
            text = api.call("get", "Pod", pod["metadata"]["name"], sub="log", raw=True)
            rows = [_split(line, component) for line in text.splitlines()]
            rows = [r for r in rows if not worker or worker in (r[0], r[0].partition("/")[0])]
            yield from rows[-tail:] if tail else rows if tail is None else []


def _split(line: str, component: str | None) -> tuple[str, str]:
    if component == "driver":
        return "driver/0", line
    who, sep, rest = line.partition(" | ")
    return (who, rest) if sep and "/" in who else (f"{component}/-", line)


def _containers(pod: dict) -> list[dict]:
    return (pod.get("status") or {}).get("containerStatuses") or []


def _pod_row(pod: dict) -> dict:
    rows = []
    for c in _containers(pod):
        state = c.get("state") or {}
        waiting, done = state.get("waiting") or {}, state.get("terminated") or {}
        rows.append({"name": c.get("name"), "ready": c.get("ready"), "restarts": c.get("restartCount", 0),
                     "waiting_reason": waiting.get("reason"), "exit_code": done.get("exitCode"),
                     "reason": done.get("reason")})
    labels = pod["metadata"].get("labels", {})
    return {"name": pod["metadata"]["name"], "component": labels.get("areal/component"),
            "phase": (pod.get("status") or {}).get("phase"), "containers": rows}


def _driver_exit(pods: list[dict]) -> int | None:
    for pod in pods:
        if pod["metadata"].get("labels", {}).get("areal/component") == "driver":
            for c in _containers(pod):
                code = ((c.get("state") or {}).get("terminated") or {}).get("exitCode")
                if code is not None:
                    return int(code)
    return None


def _state(workload: dict | None, pods: list[dict]) -> RunState:
    """JobSet conditions decide the end (Completed/Failed); a deleted workload was stopped; else the pods say."""
    if workload is None:
        return RunState.STOPPED
    conditions = {c.get("type"): c.get("status") for c in (workload.get("status") or {}).get("conditions") or []}
    if conditions.get("Completed") == "True":
        return RunState.SUCCEEDED
    if conditions.get("Failed") == "True":
        return RunState.FAILED
    phases = [(p.get("status") or {}).get("phase") for p in pods]
    if not phases or any(ph == "Pending" for ph in phases) and not any(ph == "Running" for ph in phases):
        return RunState.PENDING
    return RunState.RUNNING if all(ph in ("Running", "Succeeded") for ph in phases) else RunState.STARTING
