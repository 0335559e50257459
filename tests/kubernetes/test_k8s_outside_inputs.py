"""What comes from outside the experiment file to the Kubernetes verbs: the kubeconfig and the API server's answers.
A broken one is a clear, attributed error and exit 1, never a traceback or exit 70. The server here is a hostile
one (any address may answer anything); the real API server's answers are tested in test_k8s_cluster.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from helpers import ROOT

RUN = "gsm8k-grpo-async/trial0"


def _cli(env, *args):
    return subprocess.run([sys.executable, "-m", "areal_compiler", *args], env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def folder(compile_k8s):
    result, out = compile_k8s(ROOT / "examples" / "two-node-decoupled.yaml")
    assert result.ok
    return out


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "AREAL_HOME": str(tmp_path / "home"), "HOME": str(tmp_path)}


def _clean_failure(out, *needles):
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr + out.stdout
    for needle in needles:
        assert needle in out.stderr + out.stdout, (needle, out.stderr, out.stdout)


def test_a_kubeconfig_that_is_not_yaml_is_located(folder, env, tmp_path):
    config = tmp_path / "kubeconfig"
    config.write_text("apiVersion: v1\ngarbage: [\n", encoding="utf-8")
    out = _cli({**env, "KUBECONFIG": str(config)}, "submit", str(folder), "--target", "kubernetes")
    _clean_failure(out, f"{config}:3:1", "not valid YAML")


@pytest.mark.parametrize("text,said", [("- a\n- b\n", "holds a list"), ("", "holds nothing"),
                                       ("apiVersion: v1\nkind: Config\n", "not a usable kubeconfig")])
def test_a_kubeconfig_of_the_wrong_shape_is_named(folder, env, tmp_path, text, said):
    config = tmp_path / "kubeconfig"
    config.write_text(text, encoding="utf-8")
    out = _cli({**env, "KUBECONFIG": str(config)}, "submit", str(folder), "--target", "kubernetes")
    _clean_failure(out, str(config), said)


def test_a_kubeconfig_path_that_does_not_exist_is_named_not_set_kubeconfig(folder, env, tmp_path):
    missing = tmp_path / "nope" / "config"
    out = _cli({**env, "KUBECONFIG": str(missing)}, "submit", str(folder), "--target", "kubernetes")
    _clean_failure(out, f"KUBECONFIG names {missing}, which does not exist")
    assert "set KUBECONFIG" not in out.stderr


class Hostile:
    """An HTTP server that answers every request with `self.answer` (status, body)."""

    def __init__(self):
        self.answer = (200, "{}")
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, body = outer.answer
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _reply

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def hostile(env, tmp_path):
    server = Hostile()
    config = tmp_path / "kubeconfig"
    config.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "h",
        "clusters": [{"name": "h", "cluster": {"server": server.url}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "h", "context": {"cluster": "h", "user": "u"}}]}), encoding="utf-8")
    yield server, {**env, "KUBECONFIG": str(config)}
    server.server.shutdown()
    server.server.server_close()


ANSWERS = {
    "html": (200, "<html><body>proxy login</body></html>"),
    "a list": (200, "[1, 2]"),
    "nameless items": (200, json.dumps({"items": [{"metadata": "x"}]})),
    "fields of the wrong type": (200, json.dumps({"items": [{"metadata": {"name": "p", "labels": "x"}, "status": 5}],
                                                  "status": {"conditions": "many"}})),
    "a server error page": (502, "<html>bad gateway</html>"),
}


def test_submit_to_something_that_is_not_an_api_server(folder, hostile):
    server, env = hostile
    server.answer = ANSWERS["html"]
    out = _cli(env, "submit", str(folder), "--target", "kubernetes")
    _clean_failure(out, f"the Kubernetes API server at {server.url}", "not a JSON object",
                   "is that address a Kubernetes API server?")


@pytest.mark.parametrize("answer", ANSWERS, ids=list(ANSWERS))
def test_status_logs_stop_read_any_answer_defensively(folder, hostile, answer):
    server, env = hostile
    out = _cli(env, "submit", str(folder), "--target", "kubernetes")  # `{}` to every create: accepted
    assert out.returncode == 0, out.stderr
    server.answer = ANSWERS[answer]
    status = _cli(env, "status", RUN, "-o", "json")
    _clean_failure(status)
    assert server.url in json.loads(status.stdout)["data"]["error"]
    # stop reads only the names of what it deletes: objects with a name are an answer it can act on
    for verb in ("logs",) if answer == "fields of the wrong type" else ("logs", "stop"):
        out = _cli(env, verb, RUN)
        _clean_failure(out, server.url)
