"""The demo's driver (the controller, like AReaL's training script): for each step it asks the staleness gate for
a batch of rollouts, has the rollout servers generate them, has the trainer server train on them, publishes the
new policy version, and exits. The job ends with its exit code (`--exit-code N` simulates a failing script).

Finds the servers through the environment contract (AREAL_ADDRS_ROLLOUT, AREAL_ADDRS_ACTOR, AREAL_GATE_URL; a long
address list comes in the file that AREAL_ADDRS_<ROLE>_FILE names instead)."""
import argparse
import itertools
import json
import os
import sys
import time
import urllib.error
import urllib.request

from gate import Gate

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=5)
parser.add_argument("--batch-size", type=int, default=4)
parser.add_argument("--exit-code", type=int, default=0, help="exit with this code after the last step")
args = parser.parse_args()


def post(address, path, body, attempts=150):
    """POST JSON to a role server; retry while it is still starting (every process starts at once)."""
    for attempt in range(attempts):
        try:
            request = urllib.request.Request("http://%s/%s" % (address, path), data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.1)


def addresses(role):
    """host:port of every worker of ROLE: AREAL_ADDRS_<ROLE>, or when the list is long the file that
    AREAL_ADDRS_<ROLE>_FILE names (the agent's rule for every list in the environment)."""
    name = "AREAL_ADDRS_" + role.upper()
    if name in os.environ:
        return os.environ[name].split(",")
    with open(os.environ[name + "_FILE"], encoding="utf-8") as handle:
        return handle.read().split(",")


rollouts = itertools.cycle(addresses("rollout"))
trainer = addresses("actor")[0]
gate = Gate()
for step in range(1, args.steps + 1):
    done = 0
    while done < args.batch_size:
        if not gate.try_submit():
            time.sleep(0.02)  # too far ahead of the trainer: wait for a new version
            continue
        post(next(rollouts), "generate", {"step": step})
        gate.accept()
        done += 1
    post(trainer, "train", {"step": step})
    gate.set_version(step)
    print("controller: step %d trained on %d rollouts, published version %d" % (step, done, step), flush=True)
print("controller: done; exiting %d" % args.exit_code, flush=True)
sys.exit(args.exit_code)
