"""Running a compiled Kubernetes folder: submit (token Secret, then the manifests), state, details, logs, stop.

Called by the operator verbs through the target registry (`areal submit --target kubernetes`, status, logs, stop).
Talks to the API server with the `kubernetes` client (runs/k8s_api.py, imported only here); tested against a real
control plane (tests/kubernetes/cluster.sh: Kubernetes' API server, controllers and scheduler, the JobSet controller).
Answers are read defensively: one of a shape no API server sends is an OperatorError naming the server."""
from __future__ import annotations

import json
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import yaml

from areal_compiler.runs.base import OperatorError, RunBackend, RunState

ORDER = ("ConfigMap", "Service", "StatefulSet", "JobSet")  # what a submit creates, in this order
STOPS = {"JobSet": ("JobSet", "ConfigMap", "Secret"),  # what a stop deletes, per workload, in this order
         "StatefulSet": ("StatefulSet", "Service", "ConfigMap", "Secret")}
PHASES = {"Pending": "pending", "Running": "running", "Succeeded": "completed", "Failed": "failed"}
INDEX_LABELS = ("batch.kubernetes.io/job-completion-index", "apps.kubernetes.io/pod-index")
DRIVER_COMPONENT = "driver"


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
        created, mine = [], []  # every object of the run; those this submit created
        for obj in [token] + objs:
            try:
                api.call("create", obj["kind"], body=obj, query=query)
                mine.append(obj)
            except OperatorError as exc:
                if not (exc.code == "exists" and obj["kind"] == "ConfigMap"):  # content-named: the same bytes
                    raise _undone(api, [] if dry_run else mine, exc) from None
            created.append(f"{obj['kind']}/{obj['metadata']['name']}")
        if dry_run:
            return {"verdict": f"the API server would accept {', '.join(created)} (server-side dry run)",
                    "objects": created}
        from areal_compiler.runs.registry import save

        save(record)
        return {"namespace": namespace, "name": name, "objects": created}

    def _workload(self, api, record) -> dict | None:
        """The JobSet (None once deleted); a StatefulSet run has one StatefulSet per component, none named after
        the run: {} while any of them is there."""
        if record.job["workload"] == "StatefulSet":
            return {} if api.items("StatefulSet", record.job["selector"]) else None
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
            with _answer(api, f"get {record.job['workload'].lower()} {record.job['name']}"):
                state = _state(workload, pods)
                exit_code = _driver_exit(pods)
        except OperatorError:
            return RunState.UNKNOWN
        if state.terminal:
            from areal_compiler.runs.registry import save

            record.outcome = state.value
            record.exit_code = exit_code if state != RunState.STOPPED else None
            save(record)
        return state

    def details(self, record) -> dict:
        """JobSet conditions and restarts, each pod's phase and containers (exit codes, waiting reasons such as
        ImagePullBackOff, terminated reasons such as OOMKilled), recent events, the driver's exit code."""
        try:
            api = self._api(record)
            workload = self._workload(api, record) or {}
            pods = api.items("Pod", record.job["selector"])
            events = api.items("Event", "")
            with _answer(api, f"get {record.job['workload'].lower()} {record.job['name']}"):
                return self._details(record, workload, pods, events)
        except OperatorError as exc:
            return {"error": exc.message}

    @staticmethod
    def _details(record, workload: dict, pods: list[dict], events: list[dict]) -> dict:
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

    def workers(self, record) -> list[dict]:
        """One row per pod, the driver first: its component and index, pending/running/completed/failed, exit code,
        and why it waits (the scheduler's reason, a container's waiting reason) or how it ended."""
        if not record.job.get("name"):
            return []
        try:
            api = self._api(record)
            with _answer(api, "list pods"):
                return sorted((_worker_row(p) for p in api.items("Pod", record.job["selector"])),
                              key=lambda r: (r["role"] != DRIVER_COMPONENT, r["role"], r["index"]))
        except OperatorError:
            return []  # details() says why

    def stop(self, record, force: bool) -> str:
        """Delete every object of the run by its label (pods get SIGTERM and their grace period); only the kinds
        its workload has, which are all rbac.example.yaml grants."""
        api = self._api(record)
        deleted = []
        for kind in STOPS[record.job["workload"]]:
            for obj in api.items(kind, record.job["selector"]):
                api.call("delete", kind, obj["metadata"]["name"], query={"propagationPolicy": "Background"})
                deleted.append(f"{kind}/{obj['metadata']['name']}")
        return f"deleted {', '.join(deleted)}" if deleted else "already stopped"

    def log_files(self, record) -> dict[str, Path]:
        """Pods stand in for files: a non-empty answer tells the CLI there is something to read (a cluster that
        cannot be read is an OperatorError that says why)."""
        return {p["metadata"]["name"]: Path(p["metadata"]["name"])
                for p in self._api(record).items("Pod", record.job["selector"])}

    def logs(self, record, worker: str | None, tail: int | None, follow: bool, load) -> Iterator[tuple[str, str]]:
        """Each pod's log through the API; node pods prefix every line `ROLE/INDEX | `, the driver's pod is
        driver/0. Following is left to `kubectl logs -f -l app.kubernetes.io/instance=<name>`."""
        if follow:
            raise OperatorError("not_supported", "following Kubernetes logs: use kubectl logs -f -l "
                                                 f"{record.job['selector']} -n {record.job['namespace']}")
        api = self._api(record)
        for pod in sorted(api.items("Pod", record.job["selector"]), key=lambda p: p["metadata"]["name"]):
            with _answer(api, "list pods"):
                if (pod.get("status") or {}).get("phase", "Pending") == "Pending":
                    continue  # no container has run yet: no log to read
                component = (pod["metadata"].get("labels") or {}).get("areal/component")
            text = api.call("get", "Pod", pod["metadata"]["name"], sub="log", raw=True)
            rows = [_split(line, component) for line in text.splitlines()]
            rows = [r for r in rows if not worker or worker in (r[0], r[0].partition("/")[0])]
            yield from rows[-tail:] if tail else rows if tail is None else []


@contextmanager
def _answer(api, request: str):
    """Reading what the API server answered `request`: a field of a shape Kubernetes never sends is the server's
    fault, said as such (exit 1), never a traceback."""
    try:
        yield
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        raise api.bad_answer(request, f"an object Kubernetes would not send ({type(exc).__name__}: {exc})") from None


def _undone(api, created: list[dict], exc: OperatorError) -> OperatorError:
    """A submit refused part-way: delete what it had created, so a refused submit leaves nothing behind."""
    removed, left = [], []
    for obj in reversed(created):
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            api.call("delete", obj["kind"], obj["metadata"]["name"])
            removed.append(name)
        except OperatorError:
            left.append(name)
    note = (f" (deleted what this submit had created: {', '.join(removed)})" if removed else "") + \
        (f" (could not delete {', '.join(left)}: delete them by hand)" if left else "")
    return OperatorError(exc.code, exc.message + note, exc.kind, exc.retryable)


def _worker_row(pod: dict) -> dict:
    labels, status = pod["metadata"].get("labels") or {}, pod.get("status") or {}
    index = next((labels[k] for k in INDEX_LABELS if k in labels), "0")
    return {"role": labels.get("areal/component", "-"), "index": int(index), "pod": pod["metadata"]["name"],
            "status": PHASES.get(status.get("phase"), "unknown"), "heartbeat_age": None,
            "exit_code": _exit_code(pod), "message": _why(pod)}


def _why(pod: dict) -> str:
    """Why a pod waits (the scheduler's reason, a container's waiting reason) or how it ended."""
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False":
            return f"unschedulable: {c.get('message') or c.get('reason')}"
    for c in _containers(pod):
        state = c.get("state") or {}
        for key in ("waiting", "terminated"):
            if (state.get(key) or {}).get("reason"):
                return " ".join(filter(None, (state[key]["reason"], state[key].get("message"))))
    return ""


def _split(line: str, component: str | None) -> tuple[str, str]:
    if component == DRIVER_COMPONENT:
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


def _exit_code(pod: dict) -> int | None:
    for c in _containers(pod):
        code = ((c.get("state") or {}).get("terminated") or {}).get("exitCode")
        if code is not None:
            return int(code)
    return None


def _driver_exit(pods: list[dict]) -> int | None:
    for pod in pods:
        if pod["metadata"].get("labels", {}).get("areal/component") == DRIVER_COMPONENT:
            return _exit_code(pod)
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
    unplaced = any(_why(p).startswith("unschedulable") for p in pods)  # the gang waits for room
    if not phases or unplaced or any(ph == "Pending" for ph in phases) and not any(ph == "Running" for ph in phases):
        return RunState.PENDING
    return RunState.RUNNING if all(ph in ("Running", "Succeeded") for ph in phases) else RunState.STARTING
