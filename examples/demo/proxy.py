"""Toy proxy forked by each rollout worker's agent (colocated, fork: true): serves /health on its port.

It runs until its agent stops it when the rollout worker beside it finishes."""
import argparse
import http.server
import os


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args):
        pass


parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
args = parser.parse_args()
print("proxy/%s: serving on port %d beside rollout/%s" % (
    os.environ["AREAL_WORKER_INDEX"], args.port, os.environ["AREAL_WORKER_INDEX"]), flush=True)
http.server.HTTPServer((os.environ["AREAL_HOST"], args.port), Health).serve_forever()
