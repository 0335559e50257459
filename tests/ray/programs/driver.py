"""A stand-in driver for the Ray integration tests: waits until every worker reported, then exits as told.

Options: --expect N (report files to wait for in $REPORT_OUT), --sleep SECONDS, --exit-code N."""
import os
import sys
import time

args = sys.argv[1:]
opts = dict(zip(args[::2], args[1::2]))
out, expect = os.environ["REPORT_OUT"], int(opts.get("--expect", "0"))
for _ in range(2400):
    if len([n for n in os.listdir(out) if n.endswith(".json")]) >= expect:
        break
    time.sleep(0.05)
else:
    print("driver: only %s of %d workers reported" % (os.listdir(out), expect), flush=True)
    sys.exit(99)
print("driver: %d workers reported; devices seen by me: %r" % (expect, os.environ.get("CUDA_VISIBLE_DEVICES")),
      flush=True)
time.sleep(float(opts.get("--sleep", "0")))
sys.exit(int(opts.get("--exit-code", "0")))
