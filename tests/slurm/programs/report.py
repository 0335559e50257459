"""A stand-in worker for the Slurm integration tests: records what it was given, then behaves as told.

Writes $REPORT_OUT/<role>.<index>.json (argv, visibility, host, Slurm node). Options (any order, after the
script; the launcher appends `--port N`):
  --wait-for ROLE     wait until ROLE.<my index>.json exists (a forked child beside me has reported)
  --sleep SECONDS     then sleep
  --fail-index I --exit-code N   worker I exits with N
"""
import json
import os
import sys
import time

args = sys.argv[1:]
opts = dict(zip(args[::2], args[1::2]))
out = os.environ["REPORT_OUT"]
role, index = os.environ.get("AREAL_ROLE", "?"), int(os.environ.get("AREAL_WORKER_INDEX", "-1"))
record = {
    "role": role, "index": index, "argv": args,
    "cvd": os.environ.get("CUDA_VISIBLE_DEVICES"), "host": os.environ.get("AREAL_HOST"),
    "node": os.environ.get("SLURMD_NODENAME"), "procid": os.environ.get("SLURM_PROCID"),
}
path = os.path.join(out, "%s.%d.json" % (role, index))
with open(path + ".tmp", "w", encoding="utf-8") as handle:
    json.dump(record, handle)
os.replace(path + ".tmp", path)
print("report: %s/%d on node %s devices %s" % (role, index, record["node"], record["cvd"]), flush=True)
if "--wait-for" in opts:
    other = os.path.join(out, "%s.%d.json" % (opts["--wait-for"], index))
    for _ in range(1200):
        if os.path.exists(other):
            break
        time.sleep(0.05)
    else:
        sys.exit(1)
if "--sleep" in opts:
    time.sleep(float(opts["--sleep"]))
if opts.get("--fail-index") == str(index):
    sys.exit(int(opts["--exit-code"]))
