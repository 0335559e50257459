"""The `areal` command line as a user runs it: exit codes, messages, JSON envelopes, start-up imports."""
from __future__ import annotations

import json
import os
import sys

from helpers import BASE, EXAMPLES, ROOT, areal, write


def test_validate_examples_from_another_directory(tmp_path):
    result = areal("validate", *map(str, EXAMPLES), cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert f"{len(EXAMPLES)} files valid" in result.stderr.decode() + result.stdout.decode()


def test_misspelled_key_shows_position_and_hint(tmp_path):
    path = write(tmp_path, BASE.replace("num_accelerators: 8", "num_accelerator: 8"))
    result = areal("validate", str(path))
    err = result.stderr.decode()
    assert result.returncode == 1
    assert f"{path}:5:3: error[E201]: unknown key `num_accelerator` in `compute`" in err
    assert "did you mean `num_accelerators`" in err
    assert "^^^^^^^^^^^^^^^" in err  # the caret under the key
    assert "Traceback" not in err


def test_unknown_accelerator_suggests_exact_name(tmp_path):
    path = write(tmp_path, BASE.replace("GPU_8xH100", "gpu_8xh100"))
    err = areal("validate", str(path)).stderr.decode()
    assert "unknown accelerator type `gpu_8xh100`" in err and "did you mean `GPU_8xH100`?" in err


def test_json_envelope(tmp_path):
    bad = write(tmp_path, BASE.replace("trial_name: t0", "trial_name: t-0"))
    result = areal("validate", "-o", "json", str(bad), str(EXAMPLES[0]))
    assert result.returncode == 1
    envelope = json.loads(result.stdout)
    assert envelope["v"] == 1 and "T" in envelope["ts"] and envelope["ts"][-6] in "+-"
    files = envelope["data"]["files"]
    assert [f["valid"] for f in files] == [False, True]
    assert files[0]["diagnostics"][0] == {"code": "E422", "severity": "error", "file": str(bad), "line": 2,
                                          "col": 13, "hint": "e.g. trial0",
                                          "message": "trial_name `t-0` must be lower-case letters and digits only "
                                                     "(no `-`, `_` or `/`)"}


def test_usage_error_exits_2():
    assert areal("validate").returncode == 2
    assert areal("compile", str(EXAMPLES[0]), "--target", "nomad").returncode == 2


def test_help_and_validate_import_nothing_heavy(tmp_path):
    """--help imports no renderer; validate renders like compile but never a cluster client; validate and compile
    go through pydantic-core alone (spec/records.py), never importing pydantic itself."""
    code = ("import sys; from areal_compiler.cli import main\n"
            "try:\n    main([{args}])\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "heavy = [m for m in ({heavy}) if m in sys.modules]\n"
            "print('HEAVY=' + ','.join(heavy), file=sys.stderr)")
    import subprocess

    cases = {"'--help'": "'kubernetes', 'ray', 'yaml', 'pydantic', 'jsonschema'",
             f"'validate', {str(EXAMPLES[0])!r}": "'kubernetes', 'ray', 'jsonschema', 'areal_compiler.cli_runs', "
                                                  "'importlib.metadata', 'difflib', 'pydantic'",
             f"'compile', {str(EXAMPLES[0])!r}, '--out', {str(tmp_path / 'out')!r}": "'kubernetes', 'ray', "
                                                                                     "'jsonschema', 'pydantic'"}
    for args, heavy in cases.items():
        code_ = code.replace("{heavy}", heavy)
        out = subprocess.run([sys.executable, "-c", code_.replace("{args}", args)], capture_output=True, text=True,
                             cwd=ROOT)
        assert "HEAVY=\n" in out.stderr, (args, out.stderr)


def test_one_shot_commands_freeze_the_heap_and_operator_verbs_do_not():
    """validate/compile pause the collector and freeze what they built (exit skips walking it); `run` and the
    other long-running verbs keep the collector as it was."""
    code = ("import gc, sys; from areal_compiler.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(f'FROZEN={gc.get_freeze_count()} ENABLED={gc.isenabled()}', file=sys.stderr)")
    import subprocess
    import re

    def state(*args: str) -> tuple[int, str]:
        err = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT).stderr
        frozen, enabled = re.search(r"FROZEN=(\d+) ENABLED=(\w+)", err).groups()
        return int(frozen), enabled

    frozen, enabled = state("validate", str(EXAMPLES[0]))
    assert frozen > 10_000 and enabled == "True"
    assert state("run", "--help") == (0, "True")


def test_one_shot_output_is_whole_after_the_quick_exit():
    """run() ends a one-shot command with os._exit after flushing the streams: a block-buffered stdout (a pipe,
    no PYTHONUNBUFFERED) still arrives whole."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    result = areal("schema", env=env)
    assert result.returncode == 0 and result.stdout == (ROOT / "schemas" / "experiment.schema.json").read_bytes()


def test_lazy_operator_verbs_match_the_registered_ones():
    from areal_compiler import cli, cli_runs

    assert sorted(cli.OPERATOR_VERBS) == sorted(c.name for c in cli_runs.COMMANDS)


def test_catalog_json():
    data = json.loads(areal("catalog", "-o", "json").stdout)["data"]["accelerators"]
    h100 = next(a for a in data if a["name"] == "GPU_8xH100")
    assert h100["devices_per_node"] == 8 and h100["visibility_env"] == "CUDA_VISIBLE_DEVICES"
    assert any(a["visibility_env"] == "ASCEND_RT_VISIBLE_DEVICES" for a in data)


def test_every_failure_under_json_prints_the_envelope(tmp_path):
    """Issue 24 item 8: usage errors of any command (a bad option value, a missing FILE, a bad timeout, refusing to
    replace OUT) print the error envelope on stdout under -o json, and still exit 2 with click's text on stderr."""
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    example = str(EXAMPLES[0])
    cases = {("validate", "-o", "json", "--target", "nomad", example): "--target",
             ("start", "-o", "json", str(tmp_path / "missing.yaml")): "does not exist",
             ("start", "--timeout", "-1", "--output", "json", example): "positive number of seconds",
             ("compile", example, "--out", str(foreign), "-ojson"): "refusing to replace",
             ("plan", "--format", "svg", "-o", "json", example): "choose one",
             ("ps", "--output=json", "-o", "yaml"): "'yaml' is not one of",
             ("status", "-o", "json"): "Missing argument"}
    for args, words in cases.items():
        result = areal(*args, env={**os.environ, "AREAL_HOME": str(tmp_path / "home")})
        assert result.returncode == 2, (args, result.stderr.decode())
        error = json.loads(result.stdout)["error"]
        assert (error["code"], error["kind"], error["retryable"]) == ("usage_error", "invalid", False), args
        assert words in error["message"] and words in result.stderr.decode(), (args, error)
    assert (foreign / "notes.txt").read_text() == "mine"
    assert areal("plan", "--format", "svg", example).stdout.startswith(b"<svg")  # svg alone still draws
    plain = areal("validate", "--target", "nomad", example)
    assert plain.returncode == 2 and plain.stdout == b""  # without -o json: text on stderr only


def test_catalog_says_nothing_untrue_about_any_model_gpus():
    """Issue 24 item 11: GPU_*xANY has no model, so no typed gres and no known memory (not `gpu:None`, `0G`)."""
    text = areal("catalog").stdout.decode()
    rows = {line.split()[0]: line.split() for line in text.splitlines()[1:]}
    assert rows["GPU_8xANY"][1:] == ["8", "-", "nvidia.com/gpu", "gpu", "GPU"]
    assert rows["GPU_8xH100"][1:] == ["8", "80G", "nvidia.com/gpu", "gpu:h100", "GPU"]
    assert rows["CPU"][1:] == ["0", "-", "-", "-", "-"]
    assert "None" not in text
    data = {a["name"]: a for a in json.loads(areal("catalog", "-o", "json").stdout)["data"]["accelerators"]}
    assert (data["GPU_8xANY"]["device_memory_gb"], data["GPU_8xANY"]["slurm_gres_type"]) == (None, None)
