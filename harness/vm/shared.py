"""Reading what the guest wrote into its one writable directory, without trusting it.

The guest is root in its VM and owns that directory: it may have replaced a results file
with a symbolic link (to a host secret, or to /dev/zero) or made it huge. The host opens
such files without following links, only when they are regular files, and reads at most
a fixed size.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

GUEST_FILE_LIMIT = 256 << 20  # bytes read back from one guest-written file


def read_guest_file(path: Path, limit: int = GUEST_FILE_LIMIT) -> str:
    """The file's text ('' when missing, a link or not a regular file); at most `limit`
    bytes, the rest dropped."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, OSError):
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        chunks, left = [], limit
        while left > 0:
            b = os.read(fd, min(left, 1 << 20))
            if not b:
                break
            chunks.append(b)
            left -= len(b)
        return b"".join(chunks).decode(errors="replace")
    finally:
        os.close(fd)


def read_guest_bytes(path: Path, offset: int, limit: int = 1 << 20) -> bytes:
    """Up to `limit` bytes of a guest-written file from `offset` (b'' when missing, a link
    or not a regular file): for following a file while the guest still writes it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b""
        return os.pread(fd, limit, offset)
    finally:
        os.close(fd)
