"""file_open_fentry: create a file under a unique path and find its fentry and fexit events."""

from __future__ import annotations

import os
import struct
import tempfile
import time

EVENT = struct.Struct("<IIIIq256s")  # struct open_event in file_open_fentry.h
OPEN_ENTRY, OPEN_EXIT = 1, 2
FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL
ACCMODE_CREATE = os.O_ACCMODE | os.O_CREAT | os.O_EXCL  # flag bits the check can vouch for


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def check(ctx) -> str | None:
    ring = ctx.obj.ringbuf("events")
    pid = os.getpid()
    with tempfile.TemporaryDirectory(prefix="file_open_fentry.") as d:
        path = os.path.join(d, f"opened-by-{pid}")
        fd = os.open(path, FLAGS, 0o600)
        os.close(fd)

        entry = exit_ = None
        others = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (entry is None or exit_ is None):
            for raw in ring.poll(0.5):
                assert len(raw) >= EVENT.size, f"event of {len(raw)} bytes, expected {EVENT.size}"
                kind, epid, tid, flags, ret, epath = EVENT.unpack_from(raw)
                if epid != pid or _cstr(epath) != path:
                    others += 1
                    continue
                assert tid == epid, f"open from the main thread reported tid {tid}, pid {epid}"
                got = flags & ACCMODE_CREATE
                assert got == FLAGS, f"{kind=}: flags {flags:#o} lack O_WRONLY|O_CREAT|O_EXCL"
                if kind == OPEN_ENTRY:
                    assert ret == 0, f"fentry event carries a result ({ret})"
                    entry = raw
                elif kind == OPEN_EXIT:
                    assert ret == fd, f"fexit saw open() return {ret}, the process got fd {fd}"
                    exit_ = raw
                else:
                    raise AssertionError(f"unknown event kind {kind}")
    assert entry is not None, (
        f"no fentry event for pid {pid} opening {path} within 10 s ({others} other events)")
    assert exit_ is not None, (
        f"no fexit event for pid {pid} opening {path} within 10 s ({others} other events)")
    return f"pid {pid}: open of {path} seen at entry and at exit (fd {fd}, flags {FLAGS:#o})"
