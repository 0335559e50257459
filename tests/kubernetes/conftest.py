"""Fixtures for the Kubernetes tests: compile an experiment for the kubernetes target into a folder."""
from __future__ import annotations

import sys
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
