"""The Ray target without a cluster: job.json is Ray's POST body, placement per logical node, the fit check's
verdicts on given node lists, address rules, the upload package, and the CLI's failure without Ray."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from helpers import ROOT, areal, write
from areal_compiler.pipeline import compile_file
from areal_compiler.runs.base import OperatorError
from areal_compiler.runs.ray import package, resolve_address
from areal_compiler.runs.ray_fit import refusal, version_refusal

# Every field Ray 2.60's POST /api/jobs/ accepts (JobSubmitRequest); anything else is HTTP 400.
POST_FIELDS = {"entrypoint", "submission_id", "job_id", "runtime_env", "metadata", "entrypoint_num_cpus",
               "entrypoint_num_gpus", "entrypoint_memory", "entrypoint_resources", "entrypoint_label_selector"}
TWO_NODE = ROOT / "examples" / "two-node-decoupled.yaml"
GIB = 1024 ** 3


def ray_files(path) -> dict:
    result = compile_file(str(path), ("ray",))
    assert result.ok, [str(d) for d in result.diagnostics]
    return {name.split("/", 1)[1]: a.content for name, a in result.artifacts.items() if name.startswith("ray/")}


def ray_json(path, name: str) -> dict:
    return json.loads(ray_files(path)[name])


def test_job_json_is_exactly_a_post_body_with_fixed_entrypoint(tmp_path):
    hostile = write(tmp_path, """\
        experiment_name: exp
        trial_name: t0
        compute: {accelerator: GPU_8xH100, num_accelerators: 8}
        roles:
          rollout:
            backend: "sglang:d4"
            cmd: "python3 -m rollout; rm -rf / $(reboot) `id`"
            scheduling_spec: {env_vars: {EVIL: "$(reboot)"}}
          actor: {backend: "fsdp:d4", cmd: python3 -m train}
        """)
    job = ray_json(hostile, "job.json")
    assert set(job) <= POST_FIELDS
    assert job["entrypoint"] == "python3 launcher.py"
    assert "reboot" not in json.dumps(job) and "rm -rf" not in json.dumps(job)
    assert all(isinstance(v, str) for v in job["metadata"].values())  # Ray wants str -> str
    env = job["runtime_env"]
    assert set(env) == {"env_vars"} and all(isinstance(v, str) for v in env["env_vars"].values())


def test_submission_id_is_stable_and_follows_the_experiment(tmp_path):
    first = ray_json(TWO_NODE, "job.json")["submission_id"]
    assert re.fullmatch(r"areal-[0-9a-f]{20}", first)
    assert ray_json(TWO_NODE, "job.json")["submission_id"] == first
    changed = write(tmp_path, TWO_NODE.read_text().replace("hung_after: 60", "hung_after: 61"))
    assert ray_json(changed, "job.json")["submission_id"] != first


def test_two_nodes_are_two_strictly_spread_bundles_with_their_resources():
    place = ray_json(TWO_NODE, "placement.json")
    group = place["placement_group"]
    assert group["strategy"] == "STRICT_SPREAD"
    # rollout: 4 servers x (24 CPUs, 200 GB); actor: 8 ranks x (12 CPUs, 120 GB); 8 GPUs each node
    assert group["bundles"] == [{"CPU": 96, "GPU": 8, "memory": 800 * GIB}, {"CPU": 96, "GPU": 8, "memory": 960 * GIB}]
    assert group["bundle_label_selector"] == [{"ray.io/accelerator-type": "H100"}] * 2
    assert [n["workers"] for n in place["nodes"]] == [[f"rollout/{i}" for i in range(4)],
                                                      [f"actor/{i}" for i in range(8)]]
    assert place["nodes"][1]["role_devices"] == {"actor": list(range(8))}


def test_before_ray_2_49_the_accelerator_is_a_resource_share(tmp_path):
    old = write(tmp_path, TWO_NODE.read_text() + "ray: {version: \"2.40\"}\n")
    group = ray_json(old, "placement.json")["placement_group"]
    assert "bundle_label_selector" not in group
    assert all(b["accelerator_type:H100"] == pytest.approx(0.001) for b in group["bundles"])


def test_one_node_with_a_driver_and_a_forked_role(tmp_path):
    path = write(tmp_path, """\
        experiment_name: exp
        trial_name: t0
        compute: {accelerator: GPU_8xA100_80GB, num_accelerators: 8}
        roles:
          rollout: {backend: "sglang:d2t2", cmd: python3 -m rollout, scheduling_spec: {cpu: 2, mem: 4}}
          actor: {backend: "fsdp:d4", cmd: python3 -m train, scheduling_spec: {cpu: 3, mem: 5}}
          ref:
            backend: "fsdp:d4"
            cmd: python3 -m ref
            scheduling_strategy: {type: colocation, target: actor}
            scheduling_spec: {cpu: 1, mem: 1}
        driver: {cmd: python3 -m controller, scheduling_spec: {cpu: 2, mem: 3}}
        """)
    job, place = ray_json(path, "job.json"), ray_json(path, "placement.json")
    assert (job["entrypoint_num_cpus"], job["entrypoint_memory"]) == (2, 3 * GIB)
    group = place["placement_group"]
    assert group["strategy"] == "PACK" and group["bundle_label_selector"] == [{"ray.io/accelerator-type": "A100"}]
    # 2 x (2 CPU, 4 GB) + 4 x (3 CPU, 5 GB) + 4 forked refs x (1 CPU, 1 GB); the driver is the entrypoint's
    assert group["bundles"] == [{"CPU": 4 + 12 + 4, "GPU": 8, "memory": (8 + 20 + 4) * GIB}]
    assert place["driver"] == "driver/0" and "driver/0" not in place["nodes"][0]["workers"]
    assert place["nodes"][0]["role_devices"] == {"rollout": [0, 1, 2, 3], "actor": [4, 5, 6, 7]}


def test_bad_ray_version_is_a_located_error(tmp_path):
    path = write(tmp_path, TWO_NODE.read_text() + "ray: {version: \"two\"}\n")
    result = areal("compile", str(path), "--target", "ray", "--out", str(tmp_path / "out"))
    err = result.stderr.decode()
    assert result.returncode not in (0, 70) and "ray.version `two`" in err and "Traceback" not in err
    assert re.search(r"exp\.yaml:\d+:\d+", err), err


def _node(ip, gpus=8, cpus=16, mem_gib=15, accel="H100"):
    return {"node_ip": ip, "state": "ALIVE", "labels": {"ray.io/accelerator-type": accel},
            "resources_total": {"CPU": cpus, "GPU": gpus, "memory": mem_gib * GIB, "accelerator_type:" + accel: 1}}


def test_fit_refuses_two_spread_nodes_on_one_node_with_the_numbers():
    job, place = ray_json(TWO_NODE, "job.json"), ray_json(TWO_NODE, "placement.json")
    big = [_node("10.0.0.1", cpus=128, mem_gib=2000)]
    why = refusal(job, place, big)
    assert "2 bundle(s) on 2 different nodes" in why and "only 1 can be placed" in why and "10.0.0.1: CPU 128" in why
    assert refusal(job, place, big + [_node("10.0.0.2", cpus=128, mem_gib=2000)]) is None
    assert "only 0" in refusal(job, place, [_node(f"10.0.0.{i}", cpus=128, mem_gib=2000, accel="A100")
                                            for i in (1, 2)])
    dead = dict(_node("10.0.0.2", cpus=128, mem_gib=2000), state="DEAD")
    assert "only 1" in refusal(job, place, big + [dead])


def test_fit_matches_bundles_to_distinct_nodes():
    place = {"placement_group": {"strategy": "STRICT_SPREAD", "bundles": [{"CPU": 8, "GPU": 8}, {"CPU": 1}]}}
    # greedy would give the big node to the small bundle first; a matching finds the way
    nodes = [_node("a", gpus=8, cpus=8), _node("b", gpus=0, cpus=2)]
    assert refusal({}, {"placement_group": dict(place["placement_group"], bundles=[{"CPU": 1}, {"CPU": 8, "GPU": 8}])},
                   nodes) is None
    assert refusal({"entrypoint_num_cpus": 64}, place, nodes).startswith("the driver")


def test_label_selectors_are_refused_by_a_cluster_older_than_2_49(tmp_path):
    new, old = ray_json(TWO_NODE, "placement.json"), ray_json(
        write(tmp_path, TWO_NODE.read_text() + "ray: {version: \"2.40\"}\n"), "placement.json")
    assert "Ray 2.47.1" in version_refusal(new, "2.47.1") and "set ray.version" in version_refusal(new, "2.47.1")
    assert version_refusal(new, "2.60.0") is None and version_refusal(old, "2.47.1") is None


def test_address_comes_from_flag_then_environment_then_experiment(monkeypatch):
    plan = {"targets": {"ray": {"address": "http://exp:8265"}}}
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert resolve_address(None, plan) == "http://exp:8265"
    monkeypatch.setenv("RAY_ADDRESS", "http://env:8265/")
    assert resolve_address(None, plan) == "http://env:8265"
    assert resolve_address("https://flag:443", plan) == "https://flag:443"
    with pytest.raises(OperatorError, match="not the dashboard's URL"):
        resolve_address("127.0.0.1:6379", plan)
    monkeypatch.delenv("RAY_ADDRESS")
    with pytest.raises(OperatorError) as info:
        resolve_address(None, {"targets": {"ray": {}}})
    assert info.value.code == "ray_no_address"


def test_package_is_reproducible_and_named_by_its_content(tmp_path):
    for name, content in ray_files(TWO_NODE).items():
        (tmp_path / name).write_bytes(content)
    name, data = package(tmp_path)
    assert re.fullmatch(r"_ray_pkg_[0-9a-f]{16}\.zip", name)
    assert package(tmp_path) == (name, data)
    (tmp_path / "plan.json").write_bytes(b"{}")
    assert package(tmp_path)[0] != name


def test_submit_to_an_unreachable_cluster_fails_cleanly_without_importing_ray(tmp_path):
    exp = write(tmp_path, TWO_NODE.read_text().replace("/shared/areal/experiments", str(tmp_path / "root")))
    code = ("import sys\nfrom areal_compiler.cli import main\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
            "sys.stderr.write('RAY_IMPORTED=%s\\n' % ('ray' in sys.modules))\nsys.exit(code)\n")
    env = {"AREAL_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code, "submit", str(exp), "--target", "ray", "--address",
                           "http://127.0.0.1:9"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode not in (0, 70) and "cannot reach the Ray dashboard" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "RAY_IMPORTED=False" in proc.stderr


class Garbage:
    """A stand-in Ray head on 127.0.0.1 that answers each path with the given body, takes any package upload and
    answers anything else with 404."""

    def __init__(self, answers: dict):
        import http.server
        import threading

        bodies = answers

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                uploads = self.command == "PUT" and self.path.startswith("/api/packages/")
                body = "" if uploads else bodies.get(self.path.split("?")[0])
                self.send_response(404 if body is None else 200)
                self.end_headers()
                self.wfile.write(("not found" if body is None else body).encode())

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


NODE = {"state": "ALIVE", "node_ip": "10.0.0.1", "resources_total": {"CPU": 64, "memory": 1e12}, "labels": {}}


@pytest.mark.parametrize("answers, said", [
    ({"/api/version": "[1, 2]"}, "answered GET /api/version with JSON that is not an object"),
    ({"/api/version": "<html>proxy error</html>"}, "answered GET /api/version with non-JSON"),
    ({"/api/version": '{"ray_version": 2.6}'}, "ray_version = 2.6, not a str"),
    ({"/api/version": '{"ray_version": "2.60.0"}', "/api/v0/nodes": '{"data": {"result": {"result": 7}}}'},
     "no list of nodes at data.result.result"),
    ({"/api/version": '{"ray_version": "2.60.0"}',
      "/api/v0/nodes": json.dumps({"data": {"result": {"result": [dict(NODE, resources_total={"CPU": "64"})]}}})},
     "a node it cannot read"),
    ({"/api/version": '{"ray_version": "2.60.0"}',
      "/api/v0/nodes": json.dumps({"data": {"result": {"result": [NODE]}}}),
      "/api/jobs/": '["accepted"]'}, "answered POST /api/jobs/ with JSON that is not an object"),
])
def test_a_malformed_answer_from_a_ray_head_is_a_clear_error_exit_1(tmp_path, answers, said):
    """Issue 24 item 6: whatever a Ray head answers, submit says which answer it could not read and exits 1."""
    head = Garbage(answers)
    try:
        demo = ROOT / "examples" / "demo-cpu.yaml"
        env = {**os.environ, "AREAL_HOME": str(tmp_path / "home")}
        result = areal("submit", str(demo), "--target", "ray", "--address", head.url, env=env)
    finally:
        head.close()
    err = result.stderr.decode()
    assert result.returncode == 1 and said in err and f"the Ray dashboard at {head.url}" in err, err
    assert "Traceback" not in err and "internal error" not in err


def test_status_stop_and_logs_of_a_ray_run_read_bad_answers_defensively(tmp_path):
    sid = "areal-0123"
    head = Garbage({f"/api/jobs/{sid}": '{"status": ["RUNNING"], "driver_exit_code": "0"}',
                    f"/api/jobs/{sid}/stop": '{"stopped": "yes"}', f"/api/jobs/{sid}/logs": '{"logs": 42}'})
    home = tmp_path / "home"
    (home / "runs" / "exp").mkdir(parents=True)
    (home / "runs" / "exp" / "t0.json").write_text(json.dumps({
        "name": "exp/t0", "target": "ray", "target_dir": str(tmp_path), "run_dir": "",
        "job": {"address": head.url, "submission_id": sid}}))
    env = {**os.environ, "AREAL_HOME": str(home)}
    try:
        status = areal("status", "exp/t0", env=env)
        stop = areal("stop", "exp/t0", env=env)
        logs = areal("logs", "exp/t0", env=env)
    finally:
        head.close()
    assert status.returncode == 1 and "unknown" in status.stdout.decode()
    assert f"answered GET /api/jobs/{sid} with status = [\"RUNNING\"], not a str" in status.stdout.decode()
    assert stop.returncode == 1 and 'stopped = "yes", not a bool' in stop.stderr.decode(), stop.stderr
    assert logs.returncode == 1 and "logs = 42, not a str" in logs.stderr.decode(), logs.stderr
    for result in (status, stop, logs):
        assert b"internal error" not in result.stderr and b"Traceback" not in result.stderr
