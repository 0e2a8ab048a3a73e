"""file_open_kprobe: create a file under a unique path and find its open event, fd included."""

from __future__ import annotations

import errno
import os
import struct
import tempfile
import time

EVENT = struct.Struct("<IIIIq256s")  # struct open_event in file_open_kprobe.h
FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL
ACCMODE_CREATE = os.O_ACCMODE | os.O_CREAT | os.O_EXCL  # flag bits the check can vouch for


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def check(ctx) -> str | None:
    ring = ctx.obj.ringbuf("events")
    pid = os.getpid()
    with tempfile.TemporaryDirectory(prefix="file_open_kprobe.") as d:
        path = os.path.join(d, f"opened-by-{pid}")
        fd = os.open(path, FLAGS, 0o600)
        os.close(fd)
        # a failing open is reported too, with its errno: O_EXCL on a path that exists
        try:
            os.close(os.open(path, FLAGS, 0o600))
            raise AssertionError(f"second O_EXCL open of {path} succeeded")
        except FileExistsError:
            pass

        results: list[int] = []
        others = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(results) < 2:
            for raw in ring.poll(0.5):
                assert len(raw) >= EVENT.size, f"event of {len(raw)} bytes, expected {EVENT.size}"
                epid, tid, flags, _, ret, epath = EVENT.unpack_from(raw)
                if epid != pid or _cstr(epath) != path:
                    others += 1
                    continue
                assert tid == epid, f"open from the main thread reported tid {tid}, pid {epid}"
                assert flags & ACCMODE_CREATE == FLAGS, (
                    f"flags {flags:#o} lack O_WRONLY|O_CREAT|O_EXCL")
                results.append(ret)
    assert results, f"no open event for pid {pid} and {path} within 10 s ({others} other events)"
    want = [fd, -errno.EEXIST]
    assert results == want, f"open results for {path}: {results}, expected {want}"
    return f"pid {pid}: open of {path} seen with fd {fd}, then the O_EXCL retry with -EEXIST"
