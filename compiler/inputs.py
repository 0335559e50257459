"""Files an experiment names beside itself (today one: the Slurm site template, `slurm.template`).

Called by check.py once the experiment is valid and names one: reading them is part of reading the input. What it reads goes on
the Source (`inputs`), from where the plan takes each file's bytes into the experiment's hash and its text."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from areal_compiler.agent.files import TooLarge, read_bytes
from areal_compiler.diagnostics import Diagnostic

MAX_BYTES = 256 * 1024  # a site template is a few dozen lines


@dataclass(frozen=True)
class InputFile:
    path: str  # as written in the experiment: relative to the experiment file (or absolute)
    name: str  # as diagnostics show it: the experiment's own path joined with `path`
    text: str
    sha256: str  # of its bytes

    def line(self, number: int) -> str | None:
        lines = self.text.splitlines()
        return lines[number - 1] if 0 < number <= len(lines) else None


def named(data) -> list[str]:
    """The relative paths of the files an experiment's data names, before it is checked: for a caller that puts a
    copy of the experiment elsewhere (`areal diff --base`) and must put them beside it."""
    slurm = data.get("slurm") if isinstance(data, dict) else None
    template = slurm.get("template") if isinstance(slurm, dict) else None
    return [template] if isinstance(template, str) and template and not os.path.isabs(template) else []


def read_inputs(path: str, source, experiment) -> list[Diagnostic]:
    """Read every file the experiment names into source.inputs (setting path -> InputFile); each one that cannot
    be read is an E482 at the setting that names it."""
    written = experiment.slurm.template
    setting = ("slurm", "template")
    name = os.path.join(os.path.dirname(source.name), written)
    try:
        if not written.strip():
            raise ValueError("is empty")
        raw = read_bytes(str(Path(path).parent / written), MAX_BYTES)
        if b"\x00" in raw:
            raise ValueError("is not text (it holds NUL bytes)")
        text = raw.decode("utf-8")
    except TooLarge:
        problem = f"is larger than {MAX_BYTES} bytes"
    except OSError as exc:
        problem = f"cannot be read: {exc.strerror or exc}"
    except UnicodeDecodeError as exc:
        problem = f"is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
    except ValueError as exc:
        problem = str(exc)
    else:
        source.inputs[setting] = InputFile(written, name, text, hashlib.sha256(raw).hexdigest())
        return []
    return [source.diagnostic("E482", f"slurm.template `{name}` {problem}", setting,
                              "the path is relative to the experiment file; it names a Jinja2 template that "
                              "extends job.sbatch.j2 (docs/targets/slurm.md, \"Site templates\")")]
