"""Bounded reads of regular files: a device, FIFO or socket is refused and a file over its limit is an error.

Called by plan.py (plan, secrets), state.py (state files) and the compiler's source.py; stdlib only."""
from __future__ import annotations

import errno
import os
import stat


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
