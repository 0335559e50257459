"""Upstream's schema as data: schemas/areal/derive_fields.py reads cli_args.py with ast; the committed tables are
its output for the 1.0.4 wheel and for upstream main (2.0.0), checked whenever those sources are at hand."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from helpers import ROOT
from areal_compiler.importers.fields import MISSING, read_classes
from areal_compiler.importers.upstream_schema import Kind, load

REPO = Path(os.environ.get("AREAL_UPSTREAM_REPO", "/work/.mirror/areal-project+AReaL/repo"))
SCRIPT = ROOT / "schemas" / "areal" / "derive_fields.py"


def derived(root: Path, version: str, source: str) -> dict:
    out = subprocess.run([sys.executable, str(SCRIPT), str(root), version, source], capture_output=True,
                         text=True, check=True, timeout=120).stdout
    return json.loads(out)


def committed(version: str) -> dict:
    return json.loads((ROOT / "schemas" / "areal" / f"areal-{version}.json").read_text())


def test_the_2_0_table_is_the_scripts_output_for_upstream_main(tmp_path):
    if not REPO.exists():
        pytest.skip(f"no upstream AReaL repository at {REPO}")
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "HEAD", "areal/api/cli_args.py",
                              "areal/utils/constants.py"], capture_output=True, check=True, timeout=120).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tmp_path, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    table = committed("2.0.0")
    assert derived(tmp_path, "2.0.0", table["source"]) == table


def test_the_1_0_4_table_is_the_scripts_output_for_the_wheel():
    python = os.environ.get("AREAL_UPSTREAM_PYTHON")
    if not python:
        pytest.skip("AREAL_UPSTREAM_PYTHON (the venv with the areal 1.0.4 wheel) is not set")
    site = subprocess.run([python, "-c", "import areal, os; print(os.path.dirname(os.path.dirname(areal.__file__)))"],
                          capture_output=True, text=True, check=True, timeout=300).stdout.strip()
    table = committed("1.0.4")
    assert derived(Path(site), "1.0.4", table["source"]) == table


def test_the_tables_hold_the_facts_the_importer_relies_on():
    new, old = load("2.0.0"), load("1.0.4")
    assert "exclusive" in new.fields("SchedulingSpec") and "exclusive" not in old.fields("SchedulingSpec")
    assert new.defaults("PPOConfig")["gconfig"]["max_new_tokens"] == 16384 == \
        old.defaults("PPOConfig")["gconfig"]["max_new_tokens"]
    assert new.fields("InferenceEngineConfig")["backend"]["default"] == MISSING  # required in every engine
    assert {"field": "metric", "allowed": ["ratio", "kl_k1", "kl_k2", "kl_k3"]} in \
        new.checks("RejectionSamplingConfig")
    assert new.lineage("GRPOConfig") == ["BaseExperimentConfig", "PPOConfig", "GRPOConfig"]
    assert new.defaults("PPOConfig")["actor"]["scheduling_spec"][0]["cmd"] == "python -m areal.infra.rpc.rpc_server"


SOURCE = '''\
from dataclasses import dataclass, field
from enum import Enum
from typing import ClassVar

LIMIT = 4


class Kind(str, Enum):
    a = "a-kind"


@dataclass
class Inner:
    n: int = LIMIT
    kind: str = field(default=Kind.a)


@dataclass
class Outer(Base):
    SKIPPED: ClassVar[int] = 3
    name: str = field(default=MISSING)
    inner: Inner = field(default_factory=Inner)
    items: tuple[Inner, ...] = field(default_factory=lambda: (Inner(n=2),))
    tags: list[str] = field(default_factory=list)
    size: int = int(1e3)
    mode: str = "x"

    def __post_init__(self):
        if self.mode not in ("x", "y"):
            raise ValueError("mode")
        if self.size <= 0:
            raise ValueError("size")
        if self.mode == "y":
            if self.size > 5:
                raise ValueError("depends on mode: not a single-field check")
'''


def test_read_classes_keeps_types_defaults_and_single_field_checks():
    classes = read_classes(SOURCE)
    assert set(classes) == {"Inner", "Outer"} and classes["Outer"]["bases"] == ["Base"]
    fields = classes["Outer"]["fields"]
    assert list(fields) == ["name", "inner", "items", "tags", "size", "mode"]  # ClassVar is no field
    assert fields["name"]["default"] == MISSING and fields["inner"]["default"] == {"$new": "Inner"}
    assert fields["items"] == {"type": "tuple[Inner, ...]", "default": [{"$new": "Inner", "args": {"n": 2}}]}
    assert (fields["tags"]["default"], fields["size"]["default"]) == ([], 1000)
    assert classes["Inner"]["fields"]["n"]["default"] == 4 and classes["Inner"]["fields"]["kind"]["default"] == \
        "a-kind"
    assert classes["Outer"]["checks"] == [{"field": "mode", "allowed": ["x", "y"]},
                                          {"field": "size", "op": "<=", "value": 0}]


def test_annotations_read_as_omegaconf_reads_them():
    tables = load("2.0.0")
    spec = Kind("tuple[SchedulingSpec, ...]", tables)
    assert (spec.list_of, spec.optional, spec.cls) == ("SchedulingSpec", False, None)
    assert Kind("FSDPWrapPolicy | None", tables).cls == "FSDPWrapPolicy"
    assert Kind("None | int", tables).scalars == ["int"] and Kind("None | int", tables).optional
    assert Kind("dict[str, Any]", tables).mapping and Kind("float | str", tables).scalars == ["float", "str"]
