"""templates/job.sbatch.j2 and site templates: hostile values reach bash only quoted, what a site template may do
and what it is refused (located errors, nothing written), its bytes in the hash, the compiled-template cache."""
from __future__ import annotations

import copy
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, areal
from areal_compiler.pipeline import compile_file, plan_file
from areal_compiler.targets import TargetError, sbatch, slurm

SITE_EXAMPLE = ROOT / "examples" / "slurm-site-template.yaml"
# Names: checked before the plan is made (lower-case letters, digits and `-`: E420-E422; the version MAJOR.MINOR:
# E480; the hash hex; the visibility variable an environment variable name: slurm.context). The template writes
# them as they are into comments, a message and variable names; every other text value must reach bash quoted.
NAMES = {"experiment", "sha256", "run_id", "slurm_version", "roles", "role", "var", "visibility", "nodelist_var"}
MARK = "HOSTILE"


def bash_states(text: str) -> list[str]:
    """How bash reads each character: plain, single (inside '...'), double (inside "...") or comment. Enough of
    bash for job.sbatch: quotes, backslash escapes, comments at the start of a word (no $(...) nesting)."""
    out, state, i = [], "plain", 0
    while i < len(text):
        c = text[i]
        if state == "plain":
            if c == "\\":
                out += ["plain", "plain"]
                i += 2
                continue
            if c == "#" and (i == 0 or text[i - 1] in " \t\n;&|()"):
                state = "comment"
            elif c in "'\"":
                state = "single" if c == "'" else "double"
            out.append(state)
        elif state == "double" and c == "\\":
            out += ["double", "double"]
            i += 2
            continue
        else:
            out.append(state)
            if (state, c) in (("single", "'"), ("double", '"'), ("comment", "\n")):
                state = "plain"
        i += 1
    return out


def unquoted(text: str) -> list[str]:
    """Every line where a hostile value is not inside single quotes (q's), except an #SBATCH directive whose value
    sbatch reads inside its double quotes (the `sbatch` filter's)."""
    states, found, start = bash_states(text), [], 0
    while (i := text.find(MARK, start)) >= 0:
        start = i + 1
        line = text[text.rfind("\n", 0, i) + 1:text.find("\n", i)]
        if line.startswith("#SBATCH --") and f'="{MARK}' in line and line.endswith('"'):
            continue
        if any(s != "single" for s in states[i:i + len(MARK)]):
            found.append(line)
    return found


def leaves(value, path=()):
    """Paths of the text values in a context (dicts and lists), with the key they sit under."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, path + (key,))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from leaves(item, path + (index,))
    elif isinstance(value, str):
        yield path


def replaced(ctx: dict, path: tuple, text: str) -> dict:
    ctx = copy.deepcopy(ctx)
    holder = ctx
    for step in path[:-1]:
        holder = holder[step]
    if isinstance(holder, tuple):  # an #SBATCH (key, value) pair
        return replaced_pair(ctx, path, text)
    holder[path[-1]] = text
    return ctx


def replaced_pair(ctx: dict, path: tuple, text: str) -> dict:
    holder = ctx
    for step in path[:-2]:
        holder = holder[step]
    pair = list(holder[path[-2]])
    pair[path[-1]] = text
    holder[path[-2]] = tuple(pair)
    return ctx


def every_feature(ctx: dict) -> dict:
    """The context with every optional part of the template switched on: requeue, devices and a container."""
    ctx = copy.deepcopy(ctx)
    ctx["max_retries"] = 2
    for step in ctx["steps"]:
        step.update(visibility=step["visibility"] or "CUDA_VISIBLE_DEVICES", image=step["image"] or "img",
                    container=["apptainer", "exec", "--bind", "/a:/b"])
    return ctx


HOSTILE = [f"{MARK} $(touch pwned) `touch pwned` ; rm -rf / & | ' \\ x\ny", f"{MARK} $(touch pwned) `id` ; & |"]


@pytest.mark.parametrize("example", ["two-node-decoupled", "hybrid-moe", "areal-gsm8k-grpo", "slurm-site-template"])
def test_hostile_values_reach_bash_only_quoted(example):
    plan = plan_file(str(ROOT / "examples" / f"{example}.yaml")).plan
    ctx, site = every_feature(slurm.context(plan)), plan.targets["slurm"].get("template")
    checked = 0
    for path in leaves(ctx):
        if path[-1] in NAMES or (len(path) > 1 and path[-2] in NAMES):
            assert shlex.quote(_at(ctx, path)) == _at(ctx, path), path  # a name needs no quoting
            continue
        for text in HOSTILE:
            try:
                script = sbatch.script(replaced(ctx, path, text), site)
            except TargetError as exc:  # an #SBATCH value sbatch could not read: refused, never written
                assert "cannot be written into an #SBATCH line" in str(exc), path
                continue
            assert MARK in script, path
            assert unquoted(script) == [], (path, unquoted(script))
            checked += 1
    assert checked > 40


def _at(ctx, path):
    for step in path:
        ctx = ctx[step]
    return ctx


def test_the_quoting_check_finds_an_unquoted_value():
    """The check above fails for each way a value could escape its quotes."""
    assert unquoted(f"RUN_DIR={shlex.quote(HOSTILE[1])}/x\n") == []
    assert unquoted(f"RUN_DIR={HOSTILE[1]}\n")
    assert unquoted(f'echo "run {shlex.quote(HOSTILE[1])}"\n')  # quoted, but inside double quotes
    assert unquoted(f"# a comment {shlex.quote(HOSTILE[0])}\n")  # its line break ends the comment
    assert unquoted(f"bash -c 'x {shlex.quote(HOSTILE[1])}'\n")  # quotes inside quotes cancel out


def compile_with(tmp_path: Path, template: str | bytes | None, out: Path | None = None, *extra: str):
    experiment = tmp_path / "exp.yaml"
    text = SITE_EXAMPLE.read_text()
    experiment.write_text(text.replace("template: site/cluster.sbatch.j2", "template: site.sbatch.j2"))
    if template is not None:
        data = template if isinstance(template, bytes) else template.encode()
        (tmp_path / "site.sbatch.j2").write_bytes(data)
    return areal("compile", str(experiment), "--target", "slurm", "--out", str(out or tmp_path / "out"), *extra)


GOOD = '{% extends "job.sbatch.j2" %}\n{% block before_job %}\nexport NCCL_DEBUG=INFO\n{% endblock %}\n'


@pytest.mark.parametrize("template, line, message", [
    ('{% extends "job.sbatch.j2" %}\n{% block before_job %}\necho {{ oops\n{% endblock %}\n', 4,
     "template syntax error"),
    ('{% extends "job.sbatch.j2" %}\n{% block before_job %}\n\necho {{ nothere|q }}\n{% endblock %}\n', 4,
     "undefined name: 'nothere' is undefined"),
    ('{% extends "job.sbatch.j2" %}\n{% block after_job %}\n{{ "".__class__.__mro__[1].__subclasses__() }}\n'
     '{% endblock %}\n', 3, "refused by the sandbox: access to attribute '__class__'"),
    ('{% extends "job.sbatch.j2" %}\n{% block before_agent %}\n{{ cycler.__init__.__globals__ }}\n{% endblock %}\n',
     3, "refused by the sandbox"),
    ('{% extends "job.sbatch.j2" %}\n{% block before_job %}{{ self._TemplateReference__context }}{% endblock %}\n',
     2, "refused by the sandbox"),
    ('{% extends "job.sbatch.j2" %}\n\n{% block steps %}srun evil{% endblock %}\n', 3,
     "block `steps` is not one a site template may fill"),
    ('#!/bin/bash\n{% extends "job.sbatch.j2" %}\n', 1, "text outside a block"),
    ('{% extends "job.sbatch.j2" %}\n{% set x = 1 %}\n', 2, "`{% set %}` outside a block"),
    ('{% block before_job %}x{% endblock %}\n', 1, "starts with `{% extends \"job.sbatch.j2\" %}`"),
    ('{% extends "/etc/passwd" %}\n', 1, "extends 'job.sbatch.j2', the shipped job.sbatch, and nothing else"),
    ('{% extends "job.sbatch.j2" %}\n{% block before_job %}\n{% include "job.sbatch.j2" %}\n{% endblock %}\n', 3,
     "cannot include or import"),
    ('{% extends "job.sbatch.j2" %}\n{% block after_job %}\n{{ 1 // 0 }}\n{% endblock %}\n', 3,
     "ZeroDivisionError"),
])
def test_a_broken_site_template_is_located_and_nothing_is_written(tmp_path, template, line, message):
    out = tmp_path / "out"
    assert compile_with(tmp_path, GOOD, out).returncode == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    result = compile_with(tmp_path, template, out)
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert f"site.sbatch.j2:{line}:1: error[E483]: slurm: " in err and message in err, err
    assert "Traceback" not in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # the previous output, untouched
    validated = areal("validate", str(tmp_path / "exp.yaml"), "--target", "slurm", "-o", "json")
    assert validated.returncode == 1
    [diagnostic] = json.loads(validated.stdout)["data"]["files"][0]["diagnostics"]
    assert (diagnostic["code"], diagnostic["line"], diagnostic["file"]) == ("E483", line,
                                                                           str(tmp_path / "site.sbatch.j2"))


@pytest.mark.parametrize("template, message", [
    (None, "cannot be read: No such file or directory"),
    (b"\xff\xfe{% extends %}", "is not UTF-8 text"),
    (b"a\x00b", "is not text"),
])
def test_a_site_template_that_cannot_be_read_is_located_at_the_setting(tmp_path, template, message):
    result = compile_with(tmp_path, template)
    err = result.stderr.decode()
    assert result.returncode == 1 and not (tmp_path / "out").exists()
    assert "exp.yaml:" in err and "error[E482]: slurm.template" in err and message in err, err


def test_the_site_blocks_land_where_offered_and_nothing_else_changes(tmp_path):
    template = ('{% extends "job.sbatch.j2" %}\n{% block before_job %}\nmodule load x\n{% endblock %}\n'
                '{% block before_agent %}\necho {{ run_id|q }}\n{% endblock %}\n'
                '{% block after_job %}\necho done\n{% endblock %}\n')
    assert compile_with(tmp_path, template).returncode == 0
    site = (tmp_path / "out" / "slurm" / "job.sbatch").read_text()
    bare = tmp_path / "bare.yaml"
    bare.write_text((tmp_path / "exp.yaml").read_text().replace("  template: site.sbatch.j2\n", ""))
    plain = slurm.render_script(plan_file(str(bare)).plan)
    assert site.index("module load x") < site.index("read_hosts()") < site.index("areal_before_agent() {")
    assert site.index("areal_before_agent() {") < site.index("srun ") < site.index("echo done")
    assert site.rstrip().endswith('exit "$code"')
    assert site.count("bash -c 'set -euo pipefail; areal_before_agent; exec \"$@\"' areal-site") == 2
    missing = set(plain.splitlines()) - set(site.splitlines())  # the hash, the run id, and the steps' wrappers
    assert {line.split()[1] for line in missing} == {"Generated", "\"areal:", "-c"}, missing
    assert all("areal-site python3 -I" in line for line in set(site.splitlines()) - set(plain.splitlines())
               if "supervise" in line)


def test_the_site_template_is_part_of_the_hash_the_manifest_and_check(tmp_path):
    out = tmp_path / "out"
    assert compile_with(tmp_path, GOOD, out).returncode == 0
    manifest = json.loads((out / "slurm" / "manifest.json").read_text())
    plan = json.loads((out / "slurm" / "plan.json").read_text())
    import hashlib

    digest = hashlib.sha256(GOOD.encode()).hexdigest()
    assert manifest["inputs"] == {"site.sbatch.j2": digest}
    assert plan["targets"]["slurm"]["template"] == {"path": "site.sbatch.j2", "sha256": digest, "text": GOOD}
    (tmp_path / "site.sbatch.j2").write_text(GOOD + "{# a comment changes no line of the script #}\n")
    stale = compile_with(tmp_path, None, out, "--check")
    assert stale.returncode == 1
    assert "slurm/job.sbatch" in stale.stderr.decode()  # its header names the experiment's new hash
    again = json.loads(plan_file(str(tmp_path / "exp.yaml")).plan.to_json())
    assert again["experiment_sha256"] != manifest["experiment_sha256"]
    no_site = plan_file(str(ROOT / "examples" / "two-node-decoupled.yaml")).plan
    assert "inputs" not in json.loads(compile_file(str(ROOT / "examples" / "two-node-decoupled.yaml"),
                                                   ("slurm",)).artifacts["slurm/manifest.json"].content)
    assert "template" not in no_site.targets["slurm"]


def test_the_compiled_template_is_cached_per_machine_and_a_cache_it_cannot_write_is_only_slower(tmp_path):
    code = ("import sys; from areal_compiler.targets import sbatch, slurm; from areal_compiler.pipeline import "
            "plan_file\nprint(sbatch.environment().bytecode_cache.directory if sbatch.environment().bytecode_cache "
            "else None)\nsys.stdout.write(slurm.render_script(plan_file(sys.argv[1]).plan))")
    example = str(ROOT / "examples" / "two-node-decoupled.yaml")

    def render(cache: Path) -> tuple[str, str]:
        done = subprocess.run([sys.executable, "-c", code, example], capture_output=True, text=True, check=True,
                              env={"XDG_CACHE_HOME": str(cache), "PATH": "/usr/bin:/bin"})
        directory, text = done.stdout.split("\n", 1)
        return directory, text

    golden = (ROOT / "golden" / "two-node-decoupled" / "slurm" / "job.sbatch").read_text()
    directory, text = render(tmp_path / "cache")
    assert text == golden and directory.startswith(str(tmp_path / "cache" / "areal-compile" / "templates-"))
    [bucket] = Path(directory).iterdir()
    assert render(tmp_path / "cache") == (directory, text) and list(Path(directory).iterdir()) == [bucket]
    bucket.write_bytes(b"j2 damaged")
    assert render(tmp_path / "cache")[1] == golden and bucket.read_bytes() != b"j2 damaged"  # compiled again
    (tmp_path / "a-file").write_text("")  # no folder can be made under it (even by root)
    assert render(tmp_path / "a-file")[1] == golden


def test_help_and_local_compiles_do_not_import_jinja2(tmp_path):
    code = ("import sys; from areal_compiler.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n"
            "    pass\nprint('JINJA2=' + str('jinja2' in sys.modules), file=sys.stderr)")
    example = str(ROOT / "examples" / "two-node-decoupled.yaml")
    for args, imported in ((["--help"], False), (["compile", example, "--target", "local,kubernetes", "--out",
                                                  str(tmp_path / "a")], False),
                           (["compile", example, "--target", "slurm", "--out", str(tmp_path / "b")], True)):
        err = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True).stderr
        assert f"JINJA2={imported}" in err, (args, err)
