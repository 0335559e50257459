"""A toy role server for the demo: answers GET /health and POST /<action> like an AReaL worker would, until it
is stopped. Rollout servers "generate" (`--action generate`), the trainer server "trains" (`--action train`).

Run by `areal run examples/demo-cpu.yaml` under the agent; `--port` is the planned port the launcher appends."""
import argparse
import http.server
import json
import os
import time

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--action", required=True, help="the POST path this server answers, e.g. generate")
parser.add_argument("--seconds", type=float, default=0.05, help="how long one request 'works'")
args = parser.parse_args()
me = "%s/%s" % (os.environ["AREAL_ROLE"], os.environ["AREAL_WORKER_INDEX"])
served = 0


class Handler(http.server.BaseHTTPRequestHandler):
    def _answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._answer(200 if self.path == "/health" else 404, {"status": "healthy", "served": served})

    def do_POST(self):
        global served
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        if self.path != "/" + args.action:
            return self._answer(404, {"error": "unknown path"})
        time.sleep(args.seconds)
        served += 1
        if served % 5 == 0:
            print("%s: %d %s requests served" % (me, served, args.action), flush=True)
        self._answer(200, {"ok": True, "by": me, "step": request.get("step")})

    def log_message(self, *unused):
        pass


print("%s: serving %s on port %d" % (me, args.action, args.port), flush=True)
http.server.ThreadingHTTPServer((os.environ["AREAL_HOST"], args.port), Handler).serve_forever()
