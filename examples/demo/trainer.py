"""Toy trainer: waits for a batch of accepted rollouts, "trains", and publishes the next policy version.

Run by `areal run examples/demo-cpu.yaml` under the agent; `--fail-at-step N --exit-code C` simulates a crash."""
import argparse
import os
import socket
import sys
import time

from gate import Gate

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--steps", type=int, default=5)
parser.add_argument("--batch-size", type=int, default=4)
parser.add_argument("--fail-at-step", type=int, default=0)
parser.add_argument("--exit-code", type=int, default=1)
args = parser.parse_args()

gate = Gate()
for step in range(1, args.steps + 1):
    while gate.state()["accepted"] < step * args.batch_size:
        time.sleep(0.02)
    if step == args.fail_at_step:
        print("trainer: step %d failed (simulated), exiting %d" % (step, args.exit_code), flush=True)
        sys.exit(args.exit_code)
    time.sleep(0.1)  # "train" on the batch
    gate.set_version(step)
    print("trainer: step %d done, published version %d" % (step, step), flush=True)
# The gate is served by our agent and goes away with us: wait until every rollout server (their addresses come
# from the environment contract) has seen the last version and closed.
for address in os.environ["AREAL_ADDRS_ROLLOUT"].split(","):
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
        except OSError:
            break
        time.sleep(0.05)
print("trainer: done", flush=True)
