"""Toy rollout worker: asks the gate before every rollout and stops once the trainer reaches its last version.

Run by `areal run examples/demo-cpu.yaml` under the agent; `--port` is the planned port the launcher appends."""
import argparse
import http.server
import os
import threading
import time

from gate import Gate

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--steps", type=int, default=5, help="the trainer's last version")
parser.add_argument("--rollout-seconds", type=float, default=0.05)
args = parser.parse_args()

me = "%s/%s" % (os.environ["AREAL_ROLE"], os.environ["AREAL_WORKER_INDEX"])


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


# Like an inference server, listen on the planned port: the trainer finds us through AREAL_ADDRS_ROLLOUT.
server = http.server.ThreadingHTTPServer((os.environ["AREAL_HOST"], args.port), Health)
threading.Thread(target=server.serve_forever, daemon=True).start()
gate = Gate()
done = 0
print("%s: generating on port %d, devices %r" % (me, args.port, os.environ.get("CUDA_VISIBLE_DEVICES")), flush=True)
while gate.state()["version"] < args.steps:
    if not gate.try_submit():
        time.sleep(0.02)  # too far ahead of the trainer: wait for a new version
        continue
    time.sleep(args.rollout_seconds)  # "generate" one rollout
    state = gate.accept()
    done += 1
    if done % 5 == 0:
        print("%s: %d rollouts, policy version %d" % (me, done, state["version"]), flush=True)
print("%s: trainer finished; %d rollouts in total" % (me, done), flush=True)
