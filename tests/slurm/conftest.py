"""Fixtures for tests that submit to a REAL Slurm cluster.

The cluster is started outside pytest:

    tests/slurm/cluster.sh up      # before pytest (CI: .ci/run)
    pytest -m slurm tests/slurm
    tests/slurm/cluster.sh down    # after, pass or fail

``slurm_cluster`` (session scope) finds it through ``${AREAL_SLURM_DIR:-/tmp/areal-slurm}/env.sh``
and checks that ``sinfo`` answers. When no cluster is found, tests marked ``slurm`` are skipped
with the reason -- unless ``AREAL_REQUIRE_SLURM=1``, in which case they fail (so a broken CI
set-up cannot pass silently).

Accounting is disabled on the test cluster (no sacct): job state and exit code come from
``squeue -t all`` and ``scontrol show job``; finished jobs stay visible for MinJobAge=3600 s.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers import engine_or_skip

DEFAULT_STATE_DIR = "/tmp/areal-slurm"

#: Job states after which a job will not change any more.
TERMINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "REVOKED",
        "SPECIAL_EXIT",
        "TIMEOUT",
    }
)

_SLURM_PATH_DIRS = ("/usr/bin", "/usr/sbin")


def _parse_scontrol_record(line: str) -> dict[str, str]:
    """Parse one ``scontrol -o show job`` line (``Key=Value Key=Value ...``).

    Values may contain spaces (e.g. ``Command=``, ``Reason=``), so split on `` Key=`` boundaries.
    """
    fields: dict[str, str] = {}
    for match in re.finditer(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/]*)=(.*?)(?=\s+[A-Za-z][A-Za-z0-9_:/]*=|$)", line):
        fields[match.group(1)] = match.group(2)
    return fields


@dataclass
class SlurmCluster:
    """Handle on the running test cluster.

    env:        os.environ plus SLURM_CONF / AREAL_SLURM_DIR (pass it to subprocesses)
    state_dir:  the cluster's state dir (slurm.conf, logs under log/)
    conf:       path of slurm.conf
    """

    state_dir: Path
    env: dict[str, str] = field(repr=False)

    @property
    def conf(self) -> Path:
        return Path(self.env["SLURM_CONF"])

    # -- plumbing ---------------------------------------------------------------------------
    def run(self, *cmd: str, check: bool = True, timeout: float = 30, cwd: str | os.PathLike | None = None):
        """Run a Slurm client command with the cluster's env; returns CompletedProcess (text)."""
        proc = subprocess.run(
            list(cmd), env=self.env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"{shlex.join(cmd)} exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    # -- submission -------------------------------------------------------------------------
    def submit(self, script_path: str | os.PathLike, *args: str) -> str:
        """``sbatch --parsable [args...] script_path``; returns the job id (hetjob: the leader's id).

        ``args`` are sbatch options (they go before the script). sbatch runs in the script's
        directory, so a job without ``--output`` writes ``slurm-<id>.out`` next to the script.
        """
        script = Path(script_path).resolve()
        proc = self.run("sbatch", "--parsable", *args, str(script), cwd=script.parent)
        job_id = proc.stdout.strip().split(";", 1)[0]
        if not job_id.isdigit():
            raise RuntimeError(f"sbatch --parsable printed {proc.stdout!r} (stderr {proc.stderr!r})")
        return job_id

    def test_only(self, script_path: str | os.PathLike, *args: str) -> subprocess.CompletedProcess:
        """``sbatch --test-only [args...] script_path`` (never raises); Slurm's verdict is in stderr."""
        script = Path(script_path).resolve()
        return self.run("sbatch", "--test-only", *args, str(script), check=False, cwd=script.parent)

    def cancel(self, job_id: str, *args: str) -> None:
        self.run("scancel", *args, str(job_id))

    # -- inspection -------------------------------------------------------------------------
    def job_states(self, job_id: str) -> list[str]:
        """States from ``squeue -h -t all -j ID -o %T`` (one per hetjob component; [] if unknown)."""
        proc = self.run("squeue", "-h", "-t", "all", "-j", str(job_id), "-o", "%T", check=False)
        if proc.returncode != 0:
            return []
        return [s.strip() for s in proc.stdout.split() if s.strip()]

    def job_info(self, job_id: str) -> dict[str, str]:
        """``scontrol -o show job ID`` as a dict for the job itself (hetjob: the leader, offset 0;
        ``job_records`` has every component)."""
        records = self.job_records(job_id)
        for rec in records:
            if rec.get("JobId") == str(job_id):
                return rec
        return records[0] if records else {}

    def job_records(self, job_id: str) -> list[dict[str, str]]:
        """All ``scontrol -o show job ID`` records (one per hetjob component)."""
        proc = self.run("scontrol", "-o", "show", "job", str(job_id), check=False)
        if proc.returncode != 0:
            return []
        return [_parse_scontrol_record(line) for line in proc.stdout.splitlines() if line.strip()]

    def wait_state(self, job_id: str, wanted: set[str] | frozenset[str], timeout: float = 30) -> str:
        """Poll until every component of the job is in one of ``wanted`` (or terminal); return the state."""
        deadline = time.monotonic() + timeout
        states: list[str] = []
        while time.monotonic() < deadline:
            states = self.job_states(job_id)
            if states and all(s in wanted or s in TERMINAL_STATES for s in states):
                return self.job_info(job_id).get("JobState", states[0])
            time.sleep(0.2)
        raise TimeoutError(f"job {job_id} not in {sorted(wanted)} after {timeout} s: squeue says {states}")

    def wait_job(self, job_id: str, timeout: float = 60) -> tuple[str, str]:
        """Wait until the job (all hetjob components) is finished; return ``(JobState, ExitCode)``.

        ExitCode is Slurm's ``"<exit status>:<signal>"`` string, e.g. ``("COMPLETED", "0:0")``,
        ``("FAILED", "3:0")``, ``("CANCELLED", "0:15")``. On timeout the job is cancelled and
        TimeoutError is raised with ``scontrol show job`` output.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = self.job_states(job_id)
            if states and all(s in TERMINAL_STATES for s in states):
                info = self.job_info(job_id)
                state = info.get("JobState", states[0])
                if state in TERMINAL_STATES:
                    return state, info.get("ExitCode", "")
            time.sleep(0.2)
        detail = self.run("scontrol", "show", "job", str(job_id), check=False).stdout
        self.run("scancel", str(job_id), check=False)
        raise TimeoutError(f"job {job_id} did not finish within {timeout} s (cancelled it):\n{detail}")


def _find_cluster() -> tuple[SlurmCluster | None, str]:
    """Return (cluster, "") or (None, reason it is unusable)."""
    state_dir = Path(os.environ.get("AREAL_SLURM_DIR", DEFAULT_STATE_DIR))
    env_sh = state_dir / "env.sh"
    hint = "start it with tests/slurm/cluster.sh up"
    if not env_sh.is_file():
        return None, f"no Slurm test cluster: {env_sh} missing ({hint})"
    ctld_pid_file = state_dir / "pids" / "slurmctld.pid"
    try:
        ctld_pid = ctld_pid_file.read_text().split()[0]
        ctld_alive = Path(f"/proc/{ctld_pid}/comm").read_text().strip() == "slurmctld"
    except (OSError, IndexError):
        ctld_alive = False
    if not ctld_alive:  # fail fast: sinfo spends ~10 s retrying a dead controller
        return None, f"no Slurm test cluster: the slurmctld recorded in {ctld_pid_file} is not running ({hint})"
    # Let bash evaluate env.sh so we see exactly what `source env.sh` gives a shell.
    proc = subprocess.run(
        ["bash", "-c", 'set -e; source "$1"; env -0', "bash", str(env_sh)],
        capture_output=True,
        timeout=10,
        check=False,
    )
    if proc.returncode != 0:
        return None, f"sourcing {env_sh} failed: {proc.stderr.decode(errors='replace')}"
    env = dict(
        item.split("=", 1) for item in proc.stdout.decode(errors="replace").split("\0") if "=" in item
    )
    path = env.get("PATH", "").split(os.pathsep)
    env["PATH"] = os.pathsep.join(path + [d for d in _SLURM_PATH_DIRS if d not in path])
    if "SLURM_CONF" not in env or not Path(env["SLURM_CONF"]).is_file():
        return None, f"{env_sh} does not point SLURM_CONF at a readable slurm.conf ({hint})"
    cluster = SlurmCluster(state_dir=state_dir, env=env)
    try:
        proc = cluster.run("sinfo", "-h", "-N", "-o", "%N %t", check=False, timeout=15)
    except FileNotFoundError:
        return None, f"sinfo not installed ({hint})"
    except subprocess.TimeoutExpired:
        return None, f"sinfo (SLURM_CONF={env['SLURM_CONF']}) did not answer within 15 s ({hint})"
    if proc.returncode != 0 or not proc.stdout.strip():
        return None, (
            f"sinfo (SLURM_CONF={env['SLURM_CONF']}) does not answer: rc={proc.returncode} "
            f"{proc.stderr.strip()} ({hint})"
        )
    return cluster, ""


@pytest.fixture(scope="session")
def slurm_cluster() -> SlurmCluster:
    """The running test cluster; skips (or fails with AREAL_REQUIRE_SLURM=1) when absent."""
    return engine_or_skip(_find_cluster(), "slurm")


@pytest.fixture(autouse=True)
def _slurm_marker_needs_cluster(request):
    """Tests marked ``slurm`` (in this directory) skip/fail like ``slurm_cluster`` even if they do not use it."""
    if request.node.get_closest_marker("slurm") is not None:
        request.getfixturevalue("slurm_cluster")
