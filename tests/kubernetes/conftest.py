"""Fixtures for the Kubernetes tests: compile an experiment for the kubernetes target into a folder; the real
control plane that tests/kubernetes/cluster.sh runs (skipped without it, failed with AREAL_REQUIRE_KUBERNETES=1)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def compile_k8s(tmp_path):
    """compile_k8s(example_path_or_text, **kubernetes_settings) -> (Compiled, folder of the kubernetes target)."""
    from areal_compiler.writing import write_tree
    from areal_compiler.pipeline import compile_file

    def run(source, **settings):
        text = Path(source).read_text(encoding="utf-8") if isinstance(source, Path) else source
        data = yaml.safe_load(text)
        if isinstance(source, Path) and data.get("slurm", {}).get("template"):  # the copy is elsewhere
            data["slurm"]["template"] = str(source.parent / data["slurm"]["template"])
        if settings:
            data["kubernetes"] = {**data.get("kubernetes", {}), **settings}
        path = tmp_path / f"exp{len(list(tmp_path.iterdir()))}.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
        result = compile_file(str(path), ("kubernetes",))
        if not result.ok:
            return result, None
        out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
        write_tree(out, result.artifacts)
        return result, out / "kubernetes"
    return run


# -- the real control plane (tests/kubernetes/cluster.sh up) --

class ControlPlane:
    """The running test cluster: its administrator (`kube`), and the CLI run against it with a kubeconfig."""

    def __init__(self, state_dir: Path):
        from kube import Kube

        self.state_dir = state_dir
        self.state = json.loads((state_dir / "cluster.json").read_text(encoding="utf-8"))
        self.kube = Kube.from_state(state_dir)

    def kubeconfig(self, path: Path, token: str) -> Path:
        """A kubeconfig for this server that authenticates with `token`."""
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "t",
            "clusters": [{"name": "t", "cluster": {"server": self.state["server"],
                                                  "certificate-authority": self.state["ca_file"]}}],
            "users": [{"name": "u", "user": {"token": token}}],
            "contexts": [{"name": "t", "context": {"cluster": "t", "user": "u"}}]}), encoding="utf-8")
        return path


def _find_control_plane():
    state_dir = Path(os.environ.get("AREAL_K8S_DIR", "/tmp/areal-k8s"))
    if not (state_dir / "env.sh").is_file():
        return None, f"no Kubernetes control plane is up ({state_dir}/env.sh missing): tests/kubernetes/cluster.sh up"
    plane = ControlPlane(state_dir)
    try:
        plane.kube.request("GET", "/readyz", raw=True, timeout=5)
    except Exception as exc:  # noqa: BLE001 - any failure to answer means: not usable
        return None, f"the control plane in {state_dir} does not answer /readyz: {exc}"
    return plane, ""


@pytest.fixture(scope="session")
def control_plane():
    from helpers import engine_or_skip

    return engine_or_skip(_find_control_plane(), "kubernetes")


@pytest.fixture
def namespace(control_plane, request):
    """A fresh namespace under Pod Security `baseline` (what a shared GPU cluster enforces), deleted afterwards."""
    digest = hashlib.sha256(f"{request.node.nodeid} {os.getpid()} {time.time()}".encode()).hexdigest()[:8]
    name = f"t-{digest}-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
    control_plane.kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": name, "labels": {"pod-security.kubernetes.io/enforce": "baseline"}}})
    yield name
    control_plane.kube.delete("Namespace", name)
