"""Run names and where a run's files live: the one place that spells them.

Used by the registry, the run backends, the operator verbs and the Slurm target."""
from __future__ import annotations

import os
import re
from pathlib import Path

NAME_PART = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # experiment and trial names as the validator allows


class BadRunName(ValueError):
    pass


def run_name(experiment: str, trial: str) -> str:
    return f"{experiment}/{trial}"


def split_name(name: str) -> tuple[str, str]:
    """`<experiment>/<trial>` -> its two parts; anything else (empty parts, `..`, more slashes) is refused."""
    experiment, _, trial = name.partition("/")
    if not (NAME_PART.fullmatch(experiment) and NAME_PART.fullmatch(trial)):
        raise BadRunName(f"run names are <experiment>/<trial> (lower-case letters, digits and `-`), got {name!r}")
    return experiment, trial


def areal_home() -> Path:
    return Path(os.environ.get("AREAL_HOME") or Path.home() / ".areal")


def run_home(name: str) -> Path:
    """$AREAL_HOME/runs/<experiment>/<trial>/: the compiled folders and local run dirs of one run name."""
    experiment, trial = split_name(name)
    return areal_home() / "runs" / experiment / trial


def record_path(name: str) -> Path:
    """The run record: $AREAL_HOME/runs/<experiment>/<trial>.json (its lock: the same with .lock)."""
    experiment, trial = split_name(name)
    return areal_home() / "runs" / experiment / f"{trial}.json"


def compiled_dir(name: str, target: str) -> Path:
    """Where `areal run/start/submit FILE` writes the compiled target folder."""
    return run_home(name) / target


def machine_run_dir(name: str) -> Path:
    """State and logs of a run on this machine."""
    return run_home(name) / "run"


def job_parent(fileroot: str, experiment: str, trial: str) -> str:
    """<fileroot>/<experiment>/<trial> on a cluster's shared file system: batch logs and one run dir per job."""
    return f"{fileroot.rstrip('/') or '/'}/{experiment}/{trial}"
