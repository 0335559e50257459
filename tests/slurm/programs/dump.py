"""A stand-in worker for the stub tests: writes its argv and whole environment to $DUMP_DIR/<role>.<index>.json."""
import json
import os
import sys

path = os.path.join(os.environ["DUMP_DIR"], "%s.%s.json" % (os.environ["AREAL_ROLE"], os.environ["AREAL_WORKER_INDEX"]))
with open(path + ".tmp", "w", encoding="utf-8") as handle:
    json.dump({"argv": sys.argv[1:], "env": dict(os.environ)}, handle, ensure_ascii=False)
os.replace(path + ".tmp", path)
