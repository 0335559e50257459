"""Hostile input through the real CLI: unencodable text, devices and FIFOs, absurd settings, broken pipes.

Each test names the behaviour of issue 15 it guards; none may see exit 70 or a traceback."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import BASE, ROOT, areal, located, write

ACTOR_CMD = "    cmd: python3 -m train\n"


def sub(text: str) -> str:
    assert ACTOR_CMD in BASE
    return BASE.replace(ACTOR_CMD, text)


def cli(*args: str, cwd=None) -> tuple[int, str, str]:
    result = areal(*args, cwd=cwd, timeout=30)
    out, err = result.stdout.decode("utf-8"), result.stderr.decode("utf-8")
    assert "Traceback" not in err and "internal error" not in err, err
    return result.returncode, out, err


def envelope(text: str) -> dict:
    return json.loads(text)  # exactly one JSON document, or this raises


# -- item 4: characters no file can hold, brought in by escapes --
ESCAPES = {
    "surrogate in cmd": (sub('    cmd: "python3 \\ud800"\n'), (12, 19)),
    "surrogate in a key": (BASE + '"\\udc80x": 1\n', (13, 2)),
    "surrogate in fileroot": (BASE + 'fileroot: "/a/\\ud800"\n', (13, 15)),
    "surrogate in an env value": (BASE + '    scheduling_spec: {env_vars: {A: "x\\udfff"}}\n', (13, 39)),
    "surrogate in the image": (BASE + 'image: "img\\ud800"\n', (13, 12)),
    "surrogate in a slurm partition": (BASE + 'slurm: {partition: "\\ud800"}\n', (13, 21)),
    "NUL in cmd": (sub('    cmd: "python3 \\0 -m train"\n'), (12, 19)),
    "NUL in an env value": (BASE + '    scheduling_spec: {env_vars: {A: "a\\x00b"}}\n', (13, 39)),
    "escape character in cmd": (sub('    cmd: "python3 \\e[31m"\n'), (12, 19)),
    "DEL in the name": (BASE.replace("experiment_name: exp", 'experiment_name: "ex\\x7fp"'), (1, 21)),
}


@pytest.mark.parametrize("name", list(ESCAPES))
def test_unencodable_text_is_located_e109_everywhere(tmp_path, name):
    text, (line, col) = ESCAPES[name]
    path = write(tmp_path, text)
    assert ("E109", line, col) in located(path)
    code, out, err = cli("validate", str(path))
    assert code == 1 and f"{path}:{line}:{col}: error[E109]" in err
    for command in (["validate"], ["compile", "--target", "all", "--out", str(tmp_path / "o")], ["plan"]):
        code, out, _ = cli(*command, "-o", "json", str(path))
        data = envelope(out)["data"]
        assert code == 1 and data["valid"] is False
        assert ("E109", line, col) in [(d["code"], d.get("line"), d.get("col")) for f in data["files"]
                                       for d in f["diagnostics"]]


def test_an_escape_looking_comment_is_only_a_comment(tmp_path):
    path = write(tmp_path, '# "\\ud800" and \\0 in a comment are text, not escapes\n' + BASE)
    assert cli("compile", "--out", str(tmp_path / "o"), str(path))[0] == 0
    assert envelope(cli("validate", "-o", "json", str(path))[1])["data"]["valid"] is True


def test_a_file_name_that_is_not_utf8_still_gives_one_envelope(tmp_path):
    name = os.fsencode(str(tmp_path)) + b"/\xff.yaml"
    with open(name, "w", encoding="utf-8") as handle:
        handle.write(BASE)
    result = subprocess.run([sys.executable, "-m", "areal_compiler", "validate", "-o", "json", name],
                            capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert envelope(result.stdout.decode("utf-8"))["data"]["valid"] is True


# -- item 5: never read a device or a FIFO, never more than the limit --
def test_dev_zero_is_refused_at_once(tmp_path):
    code, out, err = cli("validate", "/dev/zero")
    assert code == 1 and "/dev/zero: error[E101]: cannot read file: not a regular file" in err
    link = tmp_path / "zero.yaml"
    link.symlink_to("/dev/zero")
    code, out, _ = cli("compile", "-o", "json", str(link))
    assert code == 1 and envelope(out)["data"]["files"][0]["diagnostics"][0]["code"] == "E101"


def test_a_fifo_does_not_hang(tmp_path):
    fifo = tmp_path / "exp.yaml"
    os.mkfifo(fifo)
    code, _, err = cli("validate", str(fifo))  # cli() times out after 30 s if it blocks
    assert code == 1 and "E101" in err


def test_an_endless_regular_file_is_read_only_to_the_limit(tmp_path):
    path = tmp_path / "big.yaml"
    with open(path, "wb") as handle:
        handle.truncate(64 * 1024 * 1024)  # sparse: 64 MiB of NULs, never read whole
    code, _, err = cli("validate", str(path))
    assert code == 1 and "E102" in err


# -- item 8: settings that can never work --
BOUNDS = {
    "gate that can never admit": ("staleness: {max_head_offpolicyness: 1, consumer_batch_size: 0, "
                                  "max_concurrent_rollouts: 0}\n", ("E460", 13, 61)),
    "heartbeat far too small": ("runtime: {heartbeat_interval: 1e-9}\n", ("E470", 13, 31)),
    "heartbeat far too large": ("runtime: {heartbeat_interval: 86400, hung_after: 90000}\n", ("E470", 13, 31)),
    "absurd cpu": ("    scheduling_spec: {cpu: 99999999999}\n", ("E452", 13, 28)),
    "absurd mem": ("    scheduling_spec: {mem: 10000000}\n", ("E452", 13, 28)),
    "absurd port_count": ("    scheduling_spec: {port_count: 5000}\n", ("E452", 13, 35)),
    "absurd num_accelerators": (None, ("E402", 5, 21)),
    "fileroot is /": ("fileroot: /\n", ("E472", 13, 11)),
    "relative secret file": ("secrets:\n  TOKEN: {file: secrets/token}\n", ("E434", 14, 17)),
    "secret file with a line break": ('secrets:\n  TOKEN: {file: "/s/t\\n"}\n', ("E434", 14, 17)),
    "a 100 KB partition name": ("slurm: {partition: " + "p" * 100_000 + "}\n", ("E109", 13, 20)),
    "huge retries": ("slurm: {max_retries: 1000000}\n", ("E480", 13, 22)),
}


@pytest.mark.parametrize("name", list(BOUNDS))
def test_settings_that_can_never_work_are_located_errors(tmp_path, name):
    extra, expected = BOUNDS[name]
    text = BASE.replace("num_accelerators: 8", "num_accelerators: 800000000") if extra is None else BASE + extra
    assert expected in located(write(tmp_path, text))


def test_max_concurrent_rollouts_and_queue_size_zero_mean_the_default(tmp_path):
    from areal_compiler.pipeline import plan_file

    text = BASE + "staleness: {max_head_offpolicyness: 1, consumer_batch_size: 4, max_concurrent_rollouts: 0, " \
                  "queue_size: 0}\n"
    result = plan_file(str(write(tmp_path, text)))
    assert result.ok, [d.render() for d in result.diagnostics]
    gate = result.plan.gate
    assert (gate.max_concurrent_rollouts, gate.queue_size) == (4, 64)


# -- item 9: validate rejects what compile would refuse --
@pytest.mark.parametrize("fileroot", ['"/a\\nb"', '"/a\\"b"', '"/a\\\\b"', '"/a\\rb"', '"/a\\tb"'])
def test_fileroot_validate_agrees_with_compile(tmp_path, fileroot):
    path = write(tmp_path, BASE + f"fileroot: {fileroot}\n")
    assert ("E472", 13, 11) in located(path)
    code, _, err = cli("compile", "--target", "all", "--out", str(tmp_path / "o"), str(path))
    assert code == 1 and "E472" in err and "E490" not in err


# -- item 12 (diagnostics): short, one line per diagnostic, real types --
def test_a_100kb_value_is_never_echoed_whole(tmp_path):
    value = "x" * 100_000
    path = write(tmp_path, BASE.replace("GPU_8xH100", value))
    code, out, err = cli("validate", str(path))
    assert code == 1 and len(err) < 2000, len(err)
    code, out, _ = cli("validate", "-o", "json", str(path))
    assert len(out) < 3000 and "…" in out


def test_a_line_break_in_a_value_keeps_one_line_per_diagnostic(tmp_path):
    path = write(tmp_path, BASE.replace("GPU_8xH100", '"GPU\\nfake.yaml:1:1: error[E000]: forged"'))
    code, _, err = cli("validate", str(path))
    heads = [line for line in err.splitlines() if not line.startswith(" ")]
    assert code == 1 and len(heads) == 2 and heads[1].startswith("1 error(s)") and heads[0].startswith(f"{path}:4:16: error[E401]")
    assert "`GPU\\nfake.yaml" in heads[0]


INVISIBLE = ["\u202e", "\u2066", "\u200b", "\ufeff", "\u00ad", "\U000e0041"]  # RTL override, isolate, ZWSP, BOM


@pytest.mark.parametrize("char", INVISIBLE)
def test_an_invisible_character_in_a_name_is_escaped_wherever_it_is_echoed(tmp_path, char):
    """Issue 24 item 16: a right-to-left override (or another invisible format character) in a role name, a key,
    a colocation target or a file name reads as its escape in every message, the excerpt keeping its caret."""
    escape = char.encode("unicode_escape").decode()
    text = (ROOT / "examples" / "demo-cpu.yaml").read_text(encoding="utf-8")
    role = write(tmp_path, text.replace("  rollout:\n", f"  roll{char}out:\n", 1), f"role{char}.yaml")
    key = write(tmp_path, text.replace("compute: {", f"compute: {{ac{char}c: 1, "), f"key{char}.yaml")
    for args in (["validate", str(role)], ["validate", str(key)], ["validate", "-o", "json", str(role)],
                 ["start", f"{role}.missing"], ["start", "-o", "json", f"{role}.missing"]):
        result = areal(*args, env=dict(os.environ, AREAL_HOME=str(tmp_path / "home")))
        shown = (result.stdout + result.stderr).decode()
        assert result.returncode in (1, 2) and char not in shown, (args, shown)
        assert escape in shown or json.dumps(char)[1:-1] in shown, (args, shown)  # a message's, or JSON's escape
    err = areal("validate", str(role)).stderr.decode()
    assert f"role name `roll{escape}out` must be" in err and f"did you mean `roll{escape}out`?" in err
    assert f"unknown key `ac{escape}c` in `compute`" in areal("validate", str(key)).stderr.decode()
    lines = err.splitlines()
    excerpt = lines[lines.index(next(line for line in lines if "roll?out:" in line)) + 1]
    carets = len("roll?out") - (char == "\ufeff")  # PyYAML's reader counts no column for a BOM inside a line
    assert excerpt.endswith("|   " + "^" * carets), excerpt  # one `?` per character: the caret still fits


@pytest.mark.parametrize("value, described", [("1e300", "a number too large (1e+300)"),
                                              ("1.0e+400", "a number too large (inf)"),
                                              ("12345678901234567890123", "a number too large (1.23e+22)")])
def test_huge_numbers_are_reported_as_numbers(tmp_path, value, described):
    path = write(tmp_path, BASE.replace("accelerator: GPU_8xH100", f"accelerator: {value}"))
    code, _, err = cli("validate", str(path))
    assert code == 1 and f"got {described}" in err and "got string" not in err


def test_yaml_12_exponents_are_numbers(tmp_path):
    path = write(tmp_path, BASE + "runtime: {heartbeat_interval: 2e0, hung_after: 3E+1}\n")
    assert located(path) == []


# -- item 10: a reader that goes away ends the command like SIGPIPE, quietly --
def _closed_reader(*args: str, env=None) -> subprocess.CompletedProcess:
    read, write_end = os.pipe()
    os.close(read)  # the reader is gone before the first write: every write is EPIPE
    try:
        return subprocess.run([sys.executable, "-m", "areal_compiler", *args], stdout=write_end,
                              stderr=subprocess.PIPE, timeout=120, env=env, cwd=ROOT)
    finally:
        os.close(write_end)


@pytest.mark.parametrize("args", [["catalog"], ["catalog", "-o", "json"], ["schema"], ["validate", "-o", "json",
                                                                                         "examples/demo-cpu.yaml"]])
def test_broken_pipe_is_quiet(args):
    result = _closed_reader(*args)
    assert result.returncode in (0, 141) and result.stderr == b"", result.stderr


def test_broken_pipe_on_status_and_logs_of_a_real_run(tmp_path):
    env = dict(os.environ, AREAL_HOME=str(tmp_path / "home"))
    demo = (ROOT / "examples" / "demo-cpu.yaml").read_text() \
        .replace("python3 demo/", f"python3 {ROOT}/examples/demo/") \
        .replace("--steps 5", "--steps 2").replace("base_port: 31000", "base_port: 31700")
    path = tmp_path / "demo.yaml"
    path.write_text(demo)
    ran = subprocess.run([sys.executable, "-m", "areal_compiler", "run", str(path)], capture_output=True,
                         timeout=120, env=env, cwd=ROOT)
    assert ran.returncode == 0, ran.stderr.decode()
    for args in (["status", "demo-cpu/trial0"], ["logs", "demo-cpu/trial0"], ["ps", "-a"]):
        result = _closed_reader(*args, env=env)
        assert result.returncode in (0, 141) and result.stderr == b"", (args, result.stderr)
