"""A tiny stdlib client for the staleness gate that the areal agent serves (AREAL_GATE_URL + the run's token).

Used by the demo's rollout.py and trainer.py; a real AReaL worker would do the same from its own code."""
import json
import os
import time
import urllib.error
import urllib.request

RETRY_SECONDS = 15  # the gate's agent may still be starting (workers start concurrently on every target)


class Gate:
    def __init__(self):
        self.url = os.environ["AREAL_GATE_URL"]
        with open(os.environ["AREAL_AGENT_TOKEN_FILE"], encoding="utf-8") as fh:
            self.token = fh.read().strip()

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": "Bearer " + self.token, "Content-Type": "application/json"})
        deadline = time.monotonic() + RETRY_SECONDS
        while True:
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return json.loads(response.read())
            except urllib.error.URLError as exc:
                refused = isinstance(exc.reason, ConnectionRefusedError)
                if not refused or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def state(self):
        return self.call("GET", "/gate")

    def try_submit(self):
        return self.call("POST", "/gate/submit", {})["granted"]

    def accept(self):
        return self.call("POST", "/gate/accept", {})

    def set_version(self, version):
        return self.call("POST", "/gate/version", {"version": version})
