"""Operating Ray runs over the Jobs REST API with the standard library: upload, fit check, submit, state, logs, stop.

Called by the operator verbs through the target registry (`areal submit/status/logs/stop`); never imports `ray`."""
from __future__ import annotations

import hashlib
import io
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Iterator

from areal_compiler.runs.base import OperatorError, RunBackend, RunState, ended_words
from areal_compiler.runs.ray_fit import refusal, version_refusal
from areal_compiler.runs.registry import save

STATES = {"PENDING": RunState.PENDING, "RUNNING": RunState.RUNNING, "SUCCEEDED": RunState.SUCCEEDED,
          "FAILED": RunState.FAILED, "STOPPED": RunState.STOPPED}
JOB_LOG = "ray/job"  # the worker name `areal logs` shows the entrypoint's log under
TIMEOUT = 30.0
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


class Http:
    """JSON over HTTP to one Ray dashboard; every failure an OperatorError saying what to do."""

    def __init__(self, address: str):
        self.address = address.rstrip("/")

    def call(self, method: str, path: str, body=None, raw: bytes | None = None, missing_ok: bool = False):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.address + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"} if body is not None else {})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                text = response.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as exc:
            detail = _last_line(exc.read().decode("utf-8", errors="replace"))
            if exc.code == 404 and missing_ok:
                return None
            raise OperatorError("ray_http_error", f"Ray answered {method} {path} with HTTP {exc.code}: {detail}",
                                "not_found" if exc.code == 404 else "run", retryable=exc.code >= 500) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise OperatorError("ray_unreachable", f"cannot reach the Ray dashboard at {self.address} ({reason}): "
                                "is the cluster up? pass --address http://HOST:8265 or set RAY_ADDRESS",
                                "unavailable", retryable=True) from None
        try:
            answer = json.loads(text) if text.strip() else {}
        except (ValueError, RecursionError):
            raise self.bad(method, path, f"non-JSON: {text[:200]!r}") from None
        if not isinstance(answer, dict):
            raise self.bad(method, path, f"JSON that is not an object: {text[:200]!r}")
        return answer

    def bad(self, method: str, path: str, what: str) -> OperatorError:
        """An answer this client cannot read, attributed to the dashboard that gave it."""
        return OperatorError("ray_bad_answer", f"the Ray dashboard at {self.address} answered {method} {path} with "
                             f"{what}: is it a Ray dashboard (Ray 2.x Jobs API)?", "unavailable", retryable=True)


def _field(http: Http, answer: dict, key: str, kind: type, method: str, path: str):
    """answer[key] when it is a KIND (or absent: None); anything else is a bad answer."""
    value = answer.get(key)
    if value is None or type(value) is kind:  # exactly: a JSON true is no integer here
        return value
    raise http.bad(method, path, f"{key} = {json.dumps(value)[:100]}, not a {kind.__name__}")


def _nodes(http: Http, answer: dict, method: str, path: str) -> list[dict]:
    """The node list of /api/v0/nodes: each node's state, address, resources (numbers) and labels (strings)."""
    data = answer.get("data")
    result = data.get("result") if isinstance(data, dict) else None
    rows = result.get("result") if isinstance(result, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise http.bad(method, path, "no list of nodes at data.result.result")
    for row in rows:
        resources, labels = row.get("resources_total") or {}, row.get("labels") or {}
        if not (isinstance(resources, dict) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                    for v in resources.values())
                and isinstance(labels, dict) and all(isinstance(v, str) for v in labels.values())
                and all(isinstance(row.get(k), (str, type(None))) for k in ("state", "node_ip"))):
            raise http.bad(method, path, "a node it cannot read (resources must be numbers, labels strings): "
                                         f"{json.dumps(row)[:200]}")
    return rows


def _last_line(text: str) -> str:
    """Ray's error bodies are often whole tracebacks: the last meaningful line says what is wrong."""
    lines = [line.strip() for line in text.splitlines() if line.strip().strip(".")]
    return (lines[-1] if lines else text.strip())[:1000]


def resolve_address(given: str | None, plan: dict) -> str:
    """--address, else $RAY_ADDRESS, else the experiment's ray.address; must be the dashboard's http(s) URL."""
    address = given or os.environ.get("RAY_ADDRESS") or (plan.get("targets", {}).get("ray") or {}).get("address")
    if not address:
        raise OperatorError("ray_no_address", "no Ray cluster given: pass --address http://HOST:8265, set "
                            "RAY_ADDRESS, or set ray.address in the experiment")
    if urllib.parse.urlparse(address).scheme not in ("http", "https"):
        raise OperatorError("ray_bad_address", f"Ray address {address!r} is not the dashboard's URL: jobs are "
                            "submitted over HTTP, e.g. http://HOST:8265")
    return address.rstrip("/")


def _read(folder: Path, name: str) -> dict:
    try:
        return json.loads((folder / name).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OperatorError("target_incomplete", f"{folder / name} is missing or unreadable ({exc}): compile with "
                            "`areal compile --target ray`") from None


def package(folder: Path) -> tuple[str, bytes]:
    """The working-directory zip (every file of the compiled folder, fixed order and times) and its gcs:// name."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            info = zipfile.ZipInfo(path.name, date_time=FIXED_TIME)
            info.external_attr = (0o100755 if os.access(path, os.X_OK) else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    data = buffer.getvalue()
    return f"_ray_pkg_{hashlib.sha256(data).hexdigest()[:16]}.zip", data


class Backend(RunBackend):
    target = "ray"
    scheduler_logs = (JOB_LOG,)

    def fit(self, http: Http, job: dict, placement: dict) -> str:
        path = "/api/v0/nodes?detail=1&limit=10000"
        rows = _nodes(http, http.call("GET", path), "GET", path)
        why = refusal(job, placement, rows)
        if why:
            raise OperatorError("exceeds_cluster", why)
        return f"fits on the cluster's {sum(1 for r in rows if r.get('state') == 'ALIVE')} alive node(s)"

    def submit(self, folder: Path, record, dry_run: bool = False, address: str | None = None) -> dict:
        """Fit check, upload the folder as the job's working directory, POST job.json; the workers run in the
        record's workdir (the experiment file's folder), which must be on a file system the nodes share."""
        folder = Path(folder).resolve()
        job, plan, placement = _read(folder, "job.json"), _read(folder, "plan.json"), _read(folder, "placement.json")
        http = Http(resolve_address(address, plan))
        version = _field(http, http.call("GET", "/api/version"), "ray_version", str, "GET", "/api/version") or "?"
        why = version_refusal(placement, version)
        if why:
            raise OperatorError("ray_version_mismatch", why)
        verdict = self.fit(http, job, placement)
        if dry_run:
            return {"accepted": True, "verdict": verdict, "address": http.address, "ray_version": version}
        name, data = package(folder)
        if http.call("GET", f"/api/packages/gcs/{name}", missing_ok=True) is None:
            http.call("PUT", f"/api/packages/gcs/{name}", raw=data)
        body = json.loads(json.dumps(job))
        body["runtime_env"]["working_dir"] = f"gcs://{name}"
        body["runtime_env"].setdefault("env_vars", {})["AREAL_WORKDIR"] = record.workdir or os.getcwd()
        answer = self._post(http, body)
        record.job = {"address": http.address, "submission_id": answer.get("submission_id", body["submission_id"]),
                      "package": f"gcs://{name}"}
        record.run_dir = f"{placement['run_parent']}/{record.job['submission_id']}"
        save(record)
        return {"submission_id": record.job["submission_id"], "address": http.address, "run_dir": record.run_dir,
                "package": record.job["package"], "ray_version": version, "verdict": verdict}

    def _post(self, http: Http, body: dict) -> dict:
        """POST the job under the experiment's submission id, or, once its earlier jobs ended, the next free
        `<id>-<n>` (Ray never reuses an id, even deleted); an active job of this experiment is a conflict."""
        first = body["submission_id"]
        for n in range(1, 1000):
            body["submission_id"] = first if n == 1 else f"{first}-{n}"
            info = self._info(http, body["submission_id"])
            if info is not None and STATES.get(info.get("status"), RunState.UNKNOWN).active:
                raise OperatorError("run_active", f"Ray job {body['submission_id']} of this experiment is "
                                    f"{info.get('status')}: stop it first (areal stop) or change trial_name",
                                    "conflict")
            if info is None:
                try:
                    answer = http.call("POST", "/api/jobs/", body)
                    _field(http, answer, "submission_id", str, "POST", "/api/jobs/")
                    return answer
                except OperatorError as exc:
                    if "already exists" not in exc.message:
                        raise
        raise OperatorError("ray_ids_exhausted", f"999 Ray jobs of this experiment exist ({first}-*): change "
                            "trial_name", "conflict")

    def _job(self, record) -> tuple[Http, str]:
        address, sid = record.job.get("address"), record.job.get("submission_id")
        if not (isinstance(address, str) and isinstance(sid, str)):
            raise OperatorError("run_record_corrupt", f"run record {record.name} names no Ray address and "
                                "submission id: inspect it, then remove it", "conflict")
        return Http(address), sid

    def info(self, record) -> dict | None:
        return self._info(*self._job(record))

    @staticmethod
    def _info(http: Http, sid: str) -> dict | None:
        """Ray's job info (None when Ray does not know the job): status a string, driver_exit_code an integer."""
        path = f"/api/jobs/{sid}"
        info = http.call("GET", path, missing_ok=True)
        if info is not None:
            _field(http, info, "status", str, "GET", path)
            _field(http, info, "driver_exit_code", int, "GET", path)
        return info

    def state(self, record) -> RunState:
        """The outcome once the job ended (recorded the first time it is seen); else Ray's live state;
        `unknown` when Ray cannot be asked; `crashed` when Ray answers but no longer knows the job."""
        if record.outcome:
            return RunState(record.outcome)
        if not record.job.get("submission_id"):
            return RunState.CRASHED  # claimed, but the submission never completed
        try:
            info = self.info(record)
        except OperatorError:
            return RunState.UNKNOWN
        state = RunState.CRASHED if info is None else STATES.get(info.get("status"), RunState.UNKNOWN)
        if state.terminal:
            record.outcome = state.value
            record.exit_code = (info or {}).get("driver_exit_code")
            save(record)
        return state

    def stop(self, record, force: bool) -> str:
        state = self.state(record)
        if state.terminal:
            return ended_words(record, state)
        http, sid = self._job(record)
        path = f"/api/jobs/{sid}/stop"
        if _field(http, http.call("POST", path), "stopped", bool, "POST", path):
            return "stop requested"
        return ended_words(record, self.state(record))

    def details(self, record) -> dict:
        """Ray's view of the job for `areal status` (or why Ray could not be asked)."""
        facts = {"address": record.job.get("address"), "submission_id": record.job.get("submission_id")}
        try:
            info = self.info(record) if facts["submission_id"] else None
        except OperatorError as exc:
            return {"ray": dict(facts, error=exc.message)}
        keep = ("status", "message", "driver_exit_code")
        return {"ray": dict(facts, **{k: (info or {}).get(k) for k in keep})}

    def log_files(self, record) -> dict[str, Path]:
        """The workers' log files where this machine sees them, and the job's log, which Ray keeps (read through
        its API: the path stands in)."""
        files = super().log_files(record)
        return {**files, JOB_LOG: Path(JOB_LOG)} if record.job.get("submission_id") else files

    def logs(self, record, worker: str | None, tail: int | None, follow: bool, load) -> Iterator[tuple[str, str]]:
        """The entrypoint's log from Ray (worker None or `ray/job`); a worker's own log file otherwise."""
        if worker not in (None, JOB_LOG):
            yield from super().logs(record, worker, tail, follow, load)
            return
        http, sid = self._job(record)
        done = 0  # lines already shown
        while True:
            last = not follow or self.state(record).terminal
            path = f"/api/jobs/{sid}/logs"
            text = _field(http, http.call("GET", path), "logs", str, "GET", path) or ""
            parts = text.split("\n")
            complete = parts[:-1] + ([parts[-1]] if last and parts[-1] else [])
            new = complete[done:]
            if done == 0 and tail is not None:
                new = new[-tail:] if tail else []
            done = len(complete)
            yield from ((JOB_LOG, line) for line in new)
            if last:
                return
            time.sleep(self.follow_poll)
