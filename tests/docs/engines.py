"""The engines .ci/run starts (Slurm, Ray, the Kubernetes control plane), as the docs' command blocks reach them: each
tests/<engine>/cluster.sh up writes an env.sh to source. Used by doc_blocks.py and test_doc_examples.py."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


ENGINE_DIRS = {"slurm": ("AREAL_SLURM_DIR", "/tmp/areal-slurm"), "ray": ("AREAL_RAY_DIR", "/tmp/areal-ray"),
               "kubernetes": ("AREAL_K8S_DIR", "/tmp/areal-k8s")}
ENGINE_SETTINGS = {"slurm": {"SLURM_CONF": "SLURM_CONF"}, "ray": {"RAY_ADDRESS": "AREAL_RAY_ADDRESS"},
                   "kubernetes": {"KUBECONFIG": "KUBECONFIG"}}  # what a block sees -> the env.sh export


def find_engine(name: str) -> tuple[dict[str, str] | None, str]:
    """The settings a block needs to reach a running engine, as (settings, "") or (None, why there is none)."""
    variable, default = ENGINE_DIRS[name]
    env_sh = Path(os.environ.get(variable, default)) / "env.sh"
    hint = f"start it with tests/{name}/cluster.sh up"
    if not env_sh.is_file():
        return None, f"no {name} engine: {env_sh} is missing ({hint})"
    exports = dict(line[len("export "):].partition("=")[::2] for line in env_sh.read_text(encoding="utf-8")
                   .splitlines() if line.startswith("export ") and "=" in line)
    try:
        settings = {key: exports[export].strip().strip('"') for key, export in ENGINE_SETTINGS[name].items()}
    except KeyError as exc:
        return None, f"{env_sh} does not export {exc} ({hint})"
    problem = _probe(name, settings, env_sh.parent)
    return (None, f"the {name} engine of {env_sh} does not answer: {problem} ({hint})") if problem else (settings, "")


def _probe(name: str, settings: dict[str, str], state_dir: Path) -> str:
    """Why the engine cannot be used ("" when it answers)."""
    try:
        if name == "slurm":
            done = subprocess.run(["sinfo", "-h"], env={**os.environ, **settings}, capture_output=True, text=True,
                                  timeout=30)
            return "" if done.returncode == 0 else done.stderr.strip() or f"sinfo exited {done.returncode}"
        if name == "ray":
            import urllib.request

            with urllib.request.urlopen(settings["RAY_ADDRESS"] + "/api/version", timeout=10):
                return ""
        kube = kube_admin(state_dir)
        kube.request("GET", "/readyz", raw=True, timeout=5)
        return ""
    except Exception as exc:  # noqa: BLE001 - whatever stops the engine from answering is the reason
        return str(exc) or type(exc).__name__


def kube_admin(state_dir: Path):
    """The control plane's administrator (tests/kubernetes/kube.py), to make what a cluster's admin would."""
    sys.path.insert(0, str(ROOT / "tests" / "kubernetes"))
    from kube import Kube

    return Kube.from_state(state_dir)


def ensure_namespaces(engines: dict[str, dict[str, str]]) -> None:
    """A Kubernetes block's experiment names its namespace (`rl-training`): made once, as a cluster's admin would."""
    if "kubernetes" not in engines:
        return
    kube = kube_admin(Path(engines["kubernetes"]["KUBECONFIG"]).parent)
    for name in NAMESPACES:
        try:
            kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        except Exception as exc:  # noqa: BLE001 - only "already exists" may pass
            if "AlreadyExists" not in str(exc) and "409" not in str(exc):
                raise


NAMESPACES = ("rl-training",)
