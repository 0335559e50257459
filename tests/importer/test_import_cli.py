"""The import as a user runs it: shape detection, --from, --accelerator, --driver, --overlay, artifacts."""
from __future__ import annotations

import base64
import json

from helpers import areal
from imp_helpers import GSM8K, write


def test_upstream_config_is_recognized_and_compiled_with_the_original_file(tmp_path):
    path = write(tmp_path, GSM8K)
    result = areal("compile", str(path), "--accelerator", "GPU_8xH100", "--out", str(tmp_path / "out"), "-o", "json",
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    for target in json.loads(result.stdout)["data"]["targets"]:
        folder = tmp_path / "out" / target
        assert (folder / "areal-config.yaml").read_bytes() == path.read_bytes()
        manifest = json.loads((folder / "manifest.json").read_text())
        assert "areal-config.yaml" in manifest["files"]
        assert json.loads((folder / "plan.json").read_text())["accelerator"]["name"] == "GPU_8xH100"


def test_driver_option_becomes_the_plans_driver(tmp_path):
    result = areal("plan", str(write(tmp_path, GSM8K)), "--driver", "python3 gsm8k_rl.py", "-o", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    driver = json.loads(result.stdout)["data"]["roles"]["driver"]
    assert driver["argv"] == ["python3", "gsm8k_rl.py", "--config", "areal-config.yaml"]


def test_from_areal_forces_the_import(tmp_path):
    assert areal("validate", str(write(tmp_path, GSM8K)), cwd=tmp_path).returncode == 0  # recognized by shape
    odd = "experiment_name: e\ntrial_name: t\nroles_of_upstream: {}\n"
    plain = areal("validate", str(write(tmp_path, odd, "odd.yaml")), cwd=tmp_path)
    forced = areal("validate", "--from", "areal", str(tmp_path / "odd.yaml"), cwd=tmp_path)
    assert b"E202" in plain.stderr and b"compute" in plain.stderr  # read as our own format
    assert b"odd.yaml:1:1: error[E522]: `actor` is missing" in forced.stderr  # read as upstream: no actor


def test_import_options_on_our_own_format_are_refused(tmp_path):
    ours = write(tmp_path, "experiment_name: e\ntrial_name: t0\ncompute: {accelerator: CPU, num_accelerators: 0}\n"
                           "roles: {a: {replicas: 1, cmd: x}}\n", "ours.yaml")
    result = areal("validate", str(ours), "--accelerator", "GPU_8xH100", cwd=tmp_path)
    assert result.returncode == 1 and b"E518" in result.stderr and b"Traceback" not in result.stderr


def test_overlay_sets_our_keys_and_its_errors_point_into_it(tmp_path):
    path = write(tmp_path, GSM8K)
    overlay = write(tmp_path, "compute: {accelerator: GPU_8xH200}\nslurm: {partition: gpu}\n", "overlay.yaml")
    result = areal("plan", str(path), "--overlay", str(overlay), "-o", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    plan = json.loads(result.stdout)["data"]
    assert plan["accelerator"]["name"] == "GPU_8xH200" and b"W504" not in result.stderr
    bad = write(tmp_path, "compute: {accelerator: GPU_8xH10}\n", "bad.yaml")
    result = areal("validate", str(path), "--overlay", str(bad), cwd=tmp_path)
    assert result.returncode == 1 and f"{bad}:1:24: error[E401]".encode() in result.stderr
    result = areal("validate", str(path), "--overlay", str(write(tmp_path, "- 1\n", "list.yaml")), cwd=tmp_path)
    assert result.returncode == 1 and b"E519" in result.stderr


def test_scheduler_type_picks_the_default_targets(tmp_path):
    path = write(tmp_path, GSM8K.replace("type: null", "type: slurm"))
    result = areal("compile", str(path), "--out", str(tmp_path / "out"), "-o", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout)["data"]["targets"] == ["local", "slurm"]


def test_kubernetes_pods_get_the_config_beside_plan_json(tmp_path):
    """The driver reads `--config areal-config.yaml` beside plan.json (run-trainer): in a pod that is the ConfigMap's
    mount, so the ConfigMap carries the original bytes and the pods mount every key."""
    import yaml

    path = write(tmp_path, GSM8K + "# PLAN_JSON_TEXT AGENT_PYZ_BASE64 (the render's stand-ins, in a config's text)\n")
    overlay = write(tmp_path, "image: areal:1.0.4\n", "overlay.yaml")
    result = areal("compile", str(path), "--target", "kubernetes", "--overlay", str(overlay), "--driver",
                   "python3 examples/math/gsm8k_rl.py", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    folder = tmp_path / "out" / "kubernetes"
    configmap = yaml.safe_load((folder / "configmap.yaml").read_text())
    assert configmap["data"]["areal-config.yaml"].encode() == path.read_bytes()
    assert configmap["data"]["plan.json"].encode() == (folder / "plan.json").read_bytes()
    assert base64.b64decode(configmap["binaryData"]["agent.pyz"]) == (folder / "agent.pyz").read_bytes()
    jobset = yaml.safe_load((folder / "jobset.yaml").read_text())
    for job in jobset["spec"]["replicatedJobs"]:
        pod = job["template"]["spec"]["template"]["spec"]
        files = next(v for v in pod["volumes"] if v["name"] == "areal-files")["configMap"]
        assert files == {"name": configmap["metadata"]["name"], "defaultMode": 0o444}  # every key, as a file
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "areal-files")
        assert mount["mountPath"] == "/etc/areal"


def test_run_trainer_reads_the_imported_config_beside_the_plan(monkeypatch):
    from areal_compiler.upstream.run_trainer import compiled_config

    monkeypatch.setenv("AREAL_PLAN_FILE", "/etc/areal/plan.json")
    assert compiled_config(["x.py", "--config", "areal-config.yaml", "a=1"]) == [
        "x.py", "--config", "/etc/areal/areal-config.yaml", "a=1"]
    assert compiled_config(["x.py", "--config=areal-config.yaml"]) == ["x.py", "--config=/etc/areal/areal-config.yaml"]
    mine = ["x.py", "--config", "mine/areal-config.yaml", "--config=my.yaml"]
    assert compiled_config(mine) == mine  # the user's own paths stay as written
