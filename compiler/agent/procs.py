"""Process plumbing: start a child in its own group tied to the agent's life, stop a group, reap orphans.

Called by supervisor.py for the worker and every forked child (Linux prctl through ctypes when available)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
_LIBC = None


def _libc():
    """libc through ctypes on Linux (loaded in the parent, before any fork), else None."""
    global _LIBC
    if _LIBC is None and sys.platform.startswith("linux"):
        try:
            import ctypes
            _LIBC = ctypes.CDLL(None, use_errno=True)
            _LIBC.prctl  # noqa: B018 - make sure the symbol exists
        except (OSError, AttributeError):
            _LIBC = False
    return _LIBC or None


def become_subreaper() -> bool:
    """Orphaned descendants get re-parented to this process (so the agent reaps them)."""
    libc = _libc()
    return bool(libc) and libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def _death_signal_preexec(parent_pid: int) -> Optional[Callable[[], None]]:
    """In the child, before exec: SIGKILL me when the agent (the spawning thread) dies."""
    libc = _libc()
    if not libc:
        return None

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent_pid:  # the agent died before prctl took effect
            os._exit(137)
    return preexec


def spawn(argv: Sequence[str], env: Dict[str, str], log_path: Optional[str]) -> subprocess.Popen:
    """Start argv (never through a shell) as the leader of a new process group, stdout+stderr to log_path.

    Must be called from a thread that lives as long as the agent: Linux delivers the death signal when the
    spawning *thread* exits."""
    if log_path:
        os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
        out = open(log_path, "ab")
    else:
        out = None
    try:
        return subprocess.Popen(list(argv), env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT if out else None, start_new_session=True,
                                close_fds=True, preexec_fn=_death_signal_preexec(os.getpid()))
    finally:
        if out is not None:
            out.close()


def exit_code(returncode: int) -> int:
    """Popen's -N for a signal becomes the shell convention 128+N."""
    return 128 - returncode if returncode < 0 else returncode


def spawn_error_code(exc: OSError) -> int:
    return 127 if isinstance(exc, FileNotFoundError) else 126


def _proc_stat(pid: str) -> Optional[List[str]]:
    try:
        with open("/proc/%s/stat" % pid, encoding="utf-8", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def live_groups() -> Optional[set]:
    """Process-group ids that have a non-zombie member (Linux /proc), or None when /proc is missing."""
    if not os.path.isdir("/proc/self"):
        return None
    groups = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            fields = _proc_stat(pid)
            if fields and len(fields) > 2 and fields[0] not in ("Z", "X"):
                groups.add(int(fields[2]))
    return groups


def group_alive(pgid: int, groups: Optional[set] = None) -> bool:
    """Does any non-zombie process of the group exist?"""
    groups = live_groups() if groups is None else groups
    if groups is not None:
        return pgid in groups
    try:
        os.killpg(pgid, 0)
        return True
    except OSError:
        return False


def children_of(parent: int) -> List[int]:
    """Live direct children of a pid (Linux /proc; [] elsewhere): from its threads' `children` lists when the
    kernel has them, else by scanning every process (hundreds of reads on a busy host)."""
    tasks = "/proc/%d/task" % parent
    try:
        listed = [int(pid) for tid in os.listdir(tasks) for pid in _read("%s/%s/children" % (tasks, tid)).split()]
    except (OSError, ValueError):
        listed = None
    found = []
    candidates = [str(pid) for pid in listed] if listed is not None else \
        [pid for pid in os.listdir("/proc") if pid.isdigit()] if os.path.isdir("/proc/self") else []
    for pid in candidates:
        fields = _proc_stat(pid)
        if fields and len(fields) > 1 and fields[1] == str(parent) and fields[0] not in ("Z", "X"):
            found.append(int(pid))
    return found


def _read(path: str) -> str:
    with open(path, encoding="ascii") as handle:
        return handle.read()


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except OSError:
        pass


def _pending(procs: Sequence[subprocess.Popen]) -> List[subprocess.Popen]:
    """The processes whose leader has not exited or whose group still has live members. A leader still running
    needs no look at its group, a group the kernel no longer knows is gone at the cost of one kill(0), and only
    groups it still knows whose leader has exited (their members may be zombies) cost one scan of /proc."""
    for proc in procs:
        proc.poll()
    lingering = [p for p in procs if p.returncode is not None and _group_exists(p.pid)]
    groups = live_groups() if lingering else None
    return [p for p in procs if p.returncode is None or p in lingering and group_alive(p.pid, groups)]


def _group_exists(pgid: int) -> bool:
    """Any process of the group, zombies included, still exists."""
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except OSError:
        return True


def _wait_groups(procs: Sequence[subprocess.Popen], seconds: float) -> List[subprocess.Popen]:
    """Wait up to SECONDS for the groups to end; looks often at first (most end within milliseconds of SIGTERM),
    then every 0.1 s (a hundred agents stopping at once each look at /proc)."""
    deadline = time.monotonic() + seconds
    pending, pause = _pending(procs), 0.005
    while pending and time.monotonic() < deadline:
        time.sleep(pause)
        pause = min(pause * 2, 0.1)
        pending = _pending(pending)
    return pending


def stop_groups(procs: Sequence[subprocess.Popen], grace: float) -> List[int]:
    """SIGTERM every child's group at once, wait up to grace for all of them, SIGKILL the groups left.

    Returns each child's exit code (128+signal when a signal ended it)."""
    targets = _pending(procs)  # a group already gone is not signalled (its id could be reused)
    for proc in targets:
        _killpg(proc.pid, signal.SIGTERM)
    left = _wait_groups(targets, grace)
    for proc in left:
        _killpg(proc.pid, signal.SIGKILL)
    _wait_groups(left, 5.0)
    return [exit_code(proc.wait()) for proc in procs]


def reap_orphans(known: Dict[int, subprocess.Popen]) -> None:
    """Reap exited children that are not ours to wait for (orphans re-parented to a subreaper agent)."""
    for _ in range(1000):
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or info.si_pid == 0:
            return
        proc = known.get(info.si_pid)
        if proc is None:
            try:
                os.waitpid(info.si_pid, os.WNOHANG)
            except ChildProcessError:
                return
        elif proc.poll() is None:  # another thread is waiting for it right now
            return


def kill_stray_children(known: Dict[int, subprocess.Popen]) -> None:
    """SIGKILL every live direct child we did not start ourselves (descendants re-parented to a subreaper)."""
    for pid in children_of(os.getpid()):
        if pid not in known:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
