"""Bounded reads of regular files (a device, FIFO or socket is refused, over a limit is an error); atomic writes.

Called by plan.py (plan, secrets), lists.py, state.py (state files) and the compiler's source.py; stdlib only."""
from __future__ import annotations

import errno
import os
import stat
import tempfile


class NotRegularFile(OSError):
    """The path names a device, FIFO, socket or directory: reading it could block forever or never end."""


class TooLarge(ValueError):
    """The file holds more than the caller's limit."""


def read_bytes(path: str, limit: int) -> bytes:
    """At most `limit` bytes of the regular file at path. Opened non-blocking (a FIFO never hangs the open) and
    checked with fstat on the open descriptor (a symlink to /dev/zero is refused, not read)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "a device, FIFO or socket"
            raise NotRegularFile(errno.EINVAL, "not a regular file (%s)" % kind)
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        raise TooLarge("larger than %d bytes" % limit)
    return b"".join(chunks)


def read_pieces(path: str, limit: int) -> bytes:
    """The file at PATH; when PATH is absent but PATH.1 exists, the concatenation of its pieces PATH.1 .. PATH.N
    (a Kubernetes ConfigMap holds at most 1 MiB, so the Kubernetes target cuts a larger file into several)."""
    if os.path.exists(path) or not os.path.exists(path + ".1"):
        return read_bytes(path, limit)
    pieces, count, size = [], 1, 0
    while os.path.exists("%s.%d" % (path, count)):
        pieces.append(read_bytes("%s.%d" % (path, count), limit - size))
        size += len(pieces[-1])
        count += 1
    return b"".join(pieces)


def atomic_write(path: str, data: bytes, durable: bool = True) -> None:
    """Temp file in the same directory, fsync, os.replace, fsync the directory. Not `durable`: the same without
    the two fsyncs (still atomic for readers; a crash of the host may lose this write)."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if not durable:
        return
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
