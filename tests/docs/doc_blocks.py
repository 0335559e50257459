"""The command blocks of the documentation (README.md and docs/): found, parsed, run and compared.

Used by test_doc_examples.py (every block of the docs) and test_doc_harness.py (the rules, on made-up pages); the
marker convention is documented for contributors in docs/contributing.md ("Command blocks in the docs")."""
from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from engines import ensure_namespaces

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
COMMAND_LANGUAGES = ("console", "sh")  # blocks of commands; every other fence is a file's text, never run
ENGINES = ("slurm", "ray", "kubernetes")
SETUPS = ("checkout", "pull-request", "areal-checkout")
MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
EXITS = re.compile(r"#[^\n]*?\bexits (\d+)\b")
COMMAND_TIMEOUT = 600
COUNTS = {"run": 0, "engine": 0, "skipped": 0, "files": 0}  # what test_doc_examples.py ran; conftest.py prints


class BlockError(Exception):
    """A command block written against the convention (no marker, a bad marker, output before a command)."""


@dataclass
class Command:
    text: str  # what bash runs (continuation lines joined with their backslashes)
    expected: list[str] | None  # the output the block shows after the command; None when it shows none
    exit_code: int  # `# exits N` in the command's comment; 0 otherwise
    line: int  # where the command starts in its page


@dataclass
class Block:
    page: str  # relative to the repository
    line: int  # the fence's line
    language: str
    run: bool  # false: marked not runnable, with `reason`
    reason: str = ""
    engines: tuple[str, ...] = ()
    setup: str = "checkout"
    commands: list[Command] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def parse_marker(text: str, where: str) -> dict:
    """`run [ENGINE...] [in=SETUP]` or `skip REASON` -> the Block fields they set."""
    verb, _, rest = text.partition(" ")
    if verb == "skip":
        if not rest.strip():
            raise BlockError(f"{where}: `docs-test: skip` needs a reason (why this block cannot run in CI)")
        return {"run": False, "reason": rest.strip()}
    if verb != "run":
        raise BlockError(f"{where}: a docs-test marker is `run [slurm|ray|kubernetes] [in=SETUP]` or `skip REASON`,"
                         f" not `{text}`")
    engines, setup = [], "checkout"
    for word in rest.split():
        if word.startswith("in=") and word[3:] in SETUPS:
            setup = word[3:]
        elif word in ENGINES:
            engines.append(word)
        else:
            raise BlockError(f"{where}: unknown word `{word}` in a docs-test marker (engines: {', '.join(ENGINES)}; "
                             f"setups: {', '.join('in=' + s for s in SETUPS)})")
    return {"run": True, "engines": tuple(engines), "setup": setup}


def parse_commands(language: str, lines: list[tuple[int, str]], where: str) -> list[Command]:
    """`console`: `$ ` starts a command and the lines after it are its output; `sh`: every line is a command.
    A line ending in a backslash continues on the next one; `# exits N` says the command exits N."""
    commands: list[Command] = []
    pending: list[str] = []  # a command continued with backslashes
    for number, line in lines:
        if pending:
            pending.append(line)
        elif language == "console" and line.startswith("$ "):
            pending = [line[2:]]
        elif language == "sh" and line.strip() and not line.lstrip().startswith("#"):
            pending = [line]
        elif language == "console":
            if not commands:
                raise BlockError(f"{where}: output before the first `$ ` command")
            if commands[-1].expected is None:
                commands[-1].expected = []
            commands[-1].expected.append(line)
            continue
        else:
            continue
        if pending[-1].endswith("\\"):
            continue
        text = "\n".join(pending)
        exits = EXITS.search(text)
        commands.append(Command(text, None, int(exits.group(1)) if exits else 0, number - len(pending) + 1))
        pending = []
    if pending:
        raise BlockError(f"{where}: the last command ends with a backslash")
    if not commands:
        raise BlockError(f"{where}: a {language} block without a command")
    return commands


def fences(page: str, text: str):
    """Every fenced block of a page: (its fence's line, language, body lines numbered, the line before it)."""
    lines, i = text.splitlines(), 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence, language = opening.groups()
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip().startswith(fence)
                    and not lines[j].strip().strip(fence[0])), None)
        if end is None:
            raise BlockError(f"{page}:{i + 1}: a fence that is never closed")
        body = [(j + 1, lines[j][len(indent):] if lines[j].startswith(indent) else lines[j].lstrip())
                for j in range(i + 1, end)]
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        yield i + 1, language, body, before
        i = end + 1


def _page(path: Path, text: str | None) -> tuple[str, str]:
    page = path.relative_to(ROOT).as_posix() if path.is_absolute() else str(path)
    return page, path.read_text(encoding="utf-8") if text is None else text


def blocks_of(path: Path, text: str | None = None) -> list[Block]:
    """Every fenced command block of a page, with the marker on the line before its fence."""
    page, text = _page(path, text)
    blocks = []
    for line, language, body, before in fences(page, text):
        where = f"{page}:{line}"
        if language in COMMAND_LANGUAGES:
            marker = MARKER.match(before)
            if not marker:
                raise BlockError(f"{where}: a {language} block without a `<!-- docs-test: run -->` or "
                                 f"`<!-- docs-test: skip REASON -->` marker on the line before it")
            block = Block(page, line, language, **parse_marker(marker.group(1), where))
            block.commands = parse_commands(language, body, where)
            blocks.append(block)
        elif body and (body[0][1].startswith("$ ") or body[0][1].startswith("areal ")):
            raise BlockError(f"{where}: commands in a `{language}` block: write them in a console or sh block")
    return blocks


def all_blocks() -> list[Block]:
    return [block for page in PAGES for block in blocks_of(page)]


# -- files the docs show --

@dataclass
class Shown:
    """A block showing a file: `<!-- docs-test: file PATH -->` (the file of this checkout it shows, the same text or,
    for JSON, the same data) or `<!-- docs-test: experiment -->` (an experiment `areal validate` accepts)."""
    where: str
    language: str
    text: str
    file: str  # relative to the repository; "" for an experiment


def shown_of(path: Path, text: str | None = None) -> list[Shown]:
    page, text = _page(path, text)
    found = []
    for number, language, body, before in fences(page, text):
        marker = MARKER.match(before)
        if language in COMMAND_LANGUAGES or not marker:
            continue
        words, where = marker.group(1).split(), f"{page}:{number}"
        if words == ["experiment"] or (len(words) == 2 and words[0] == "file"):
            found.append(Shown(where, language, "".join(line + "\n" for _, line in body),
                               words[1] if len(words) == 2 else ""))
        else:
            raise BlockError(f"{where}: a file's block is marked `docs-test: file PATH` or `docs-test: experiment`,"
                             f" not `{marker.group(1)}`")
    return found


def all_shown() -> list[Shown]:
    return [shown for page in PAGES for shown in shown_of(page)]


def check_shown(shown: Shown, where: Path) -> list[str]:
    """Why the block is not what it claims to show (empty when it is)."""
    if not shown.file:
        (where / "experiment.yaml").write_text(shown.text, encoding="utf-8")
        done = subprocess.run([sys.executable, "-m", "areal_compiler", "validate", "experiment.yaml"], cwd=where,
                              capture_output=True, text=True, timeout=120)
        return [] if done.returncode == 0 else [f"{shown.where}: not a valid experiment:\n{done.stderr}"]
    actual = (ROOT / shown.file).read_text(encoding="utf-8")
    if shown.language == "json":
        same = json.loads(shown.text) == json.loads(actual)
    else:
        same = shown.text == actual
    if same:
        return []
    diff = difflib.unified_diff(shown.text.splitlines(), actual.splitlines(), "the docs show", shown.file,
                                lineterm="")
    return [f"{shown.where}: differs from {shown.file}:\n" + "\n".join(diff)]


# -- comparing output --

def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether the output equals what the block shows, where a line `...` stands for any lines (none included)
    and `...` inside a line for any text on that line."""
    pattern = []
    for line in expected:
        if line.strip() == "...":
            pattern.append(r"(?:[^\n]*\n)*?")
        else:
            pattern.append(".*?".join(re.escape(part) for part in line.rstrip().split("...")) + r"\n")
    return re.fullmatch("".join(pattern), "".join(line + "\n" for line in actual), re.S) is not None


def clean(output: str) -> list[str]:
    """The lines as a reader compares them: trailing blanks and trailing empty lines dropped."""
    lines = [line.rstrip() for line in output.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


# -- running a block --

def prepare(block: Block, where: Path) -> None:
    """The folder a block runs in: a copy of examples/ (as at the root of a checkout), and for some blocks more."""
    shutil.copytree(ROOT / "examples", where / "examples")
    if block.setup == "pull-request":
        pull_request(where)
    elif block.setup == "areal-checkout":
        math = where / "AReaL" / "examples" / "math"
        math.mkdir(parents=True)
        shutil.copy(CORPUS / "math__gsm8k_grpo.yaml", math / "gsm8k_grpo.yaml")


CORPUS = ROOT.parent / "shared" / "corpus" / "areal"


def pull_request(where: Path) -> None:
    """A repository whose experiments/grpo.yaml (the two-node example) is committed on origin/main, and changed in
    the working tree: a reference model colocated with the actor, the Slurm time limit raised from 48 to 72 hours."""
    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=docs", "-c", "user.email=docs@example.com", *args], cwd=where,
                       check=True, capture_output=True)

    (where / "experiments").mkdir()
    grpo = where / "experiments" / "grpo.yaml"
    text = (ROOT / "examples" / "two-node-decoupled.yaml").read_text(encoding="utf-8")
    grpo.write_text(text, encoding="utf-8")
    git("init", "-q", "-b", "main")
    git("add", "experiments")
    git("commit", "-qm", "an experiment")
    git("update-ref", "refs/remotes/origin/main", "HEAD")
    changed = text.replace('time: "48:00:00"', 'time: "72:00:00"').replace(
        "\nsecrets:", "\n  ref:\n    backend: \"fsdp:d8\"\n"
        "    scheduling_strategy: {type: colocation, target: actor}\nsecrets:", 1)
    assert changed.count("72:00:00") == 1 and "\n  ref:" in changed, "the two-node example changed shape"
    grpo.write_text(changed, encoding="utf-8")
    (where / "old.yaml").write_text(text, encoding="utf-8")
    (where / "new.yaml").write_text(changed, encoding="utf-8")
    subprocess.run([sys.executable, "-m", "areal_compiler", "compile", str(grpo), "--target", "all", "--layout",
                    "review", "--out", str(where / "compiled" / "grpo")], check=True, capture_output=True)


def environment(where: Path, engines: dict[str, dict[str, str]]) -> dict[str, str]:
    """The reader's shell: this checkout's `areal` first on PATH, a run registry of the block's own, no colours,
    Python unbuffered (so stdout and stderr interleave as on a terminal), and the engines' settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AREAL_", "SLURM_", "RAY_", "KUBECONFIG"))}
    env.update(PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", ""), "/usr/bin", "/usr/sbin"]),
               AREAL_HOME=str(where / "areal-home"), NO_COLOR="1", PYTHONUNBUFFERED="1", LC_ALL="C.UTF-8",
               COLUMNS="120")
    for settings in engines.values():
        env.update(settings)
    return env


def run_block(block: Block, where: Path, engines: dict[str, dict[str, str]]) -> list[str]:
    """Run the block's commands in order in one bash (so `cd` and variables carry) in `where`; returns the
    problems (empty when every command exits as the block says and prints what it shows)."""
    prepare(block, where)
    ensure_namespaces(engines)
    env = environment(where, engines)
    separator = "@@docs-test@@"
    script = "".join(f"{c.text}\nprintf '\\n{separator} %d\\n' $?\n" for c in block.commands)
    process = subprocess.Popen(["bash", "--noprofile", "--norc", "-c", script], cwd=where, env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=COMMAND_TIMEOUT * len(block.commands))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        output += f"\n(timed out after {COMMAND_TIMEOUT * len(block.commands)} s)".encode()
    finally:
        stop_runs(env, where)
    return compare(block, output.decode("utf-8", "replace"), separator)


def compare(block: Block, output: str, separator: str) -> list[str]:
    parts = re.split(rf"\n?{separator} (\d+)\n", output)
    problems = []
    for index, command in enumerate(block.commands):
        if 2 * index + 1 >= len(parts):
            problems.append(f"{block.page}:{command.line}: `{command.text}` never finished:\n{parts[-1]}")
            break
        printed, code = clean(parts[2 * index]), int(parts[2 * index + 1])
        if code != command.exit_code:
            problems.append(f"{block.page}:{command.line}: `{command.text}` exited {code}, the docs say "
                            f"{command.exit_code}" + "".join(f"\n    {line}" for line in printed[-30:]))
        elif command.expected is not None and not matches(command.expected, printed):
            diff = difflib.unified_diff(command.expected, printed, "the docs show", "the command printed",
                                        lineterm="")
            problems.append(f"{block.page}:{command.line}: `{command.text}` printed other output:\n" + "\n".join(diff))
    return problems


def stop_runs(env: dict[str, str], where: Path) -> None:
    """Stop whatever the block left running (a started or submitted run), on any target, by its run name, and wait
    (up to a minute) until none is active, so the next block finds the ports and the cluster free."""
    for attempt in range(60):
        listing = subprocess.run([sys.executable, "-m", "areal_compiler", "ps", "-o", "json"], cwd=where, env=env,
                                 capture_output=True, text=True, timeout=120)
        active = re.findall(r'"run": "([^"]+)"', listing.stdout)
        if not active:
            return
        for name in active if attempt % 10 == 0 else ():
            subprocess.run([sys.executable, "-m", "areal_compiler", "stop", name, "--force"], cwd=where, env=env,
                           capture_output=True, timeout=300)
        time.sleep(1)
