"""exec_trace: exec /bin/true under a unique path and find that exec's ring-buffer event."""

from __future__ import annotations

import os
import struct
import subprocess
import tempfile
import time

EVENT = struct.Struct("<II16s256s")  # struct exec_event in exec_trace.h


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def check(ctx) -> str | None:
    ring = ctx.obj.ringbuf("events")
    with tempfile.TemporaryDirectory(prefix="exec_trace.") as d:
        # a unique path: the event's filename is what was passed to execve
        target = os.path.join(d, f"true-{os.getpid()}")
        os.symlink("/bin/true", target)
        proc = subprocess.Popen([target])
        rc = proc.wait(timeout=30)
        assert rc == 0, f"{target} exited {rc}"

        seen: list[tuple[int, str]] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for raw in ring.poll(0.5):
                assert len(raw) >= EVENT.size, f"event of {len(raw)} bytes, expected {EVENT.size}"
                pid, ppid, comm, filename = EVENT.unpack_from(raw)
                name = _cstr(filename)
                if pid == proc.pid:
                    assert name == target, (
                        f"exec event of pid {pid} names {name!r}, not {target!r}")
                    assert ppid == os.getpid(), (
                        f"exec event of pid {pid}: ppid {ppid}, expected {os.getpid()}")
                    return f"pid {pid} exec of {name} seen (comm {_cstr(comm)!r}, ppid {ppid})"
                seen.append((pid, name))
    raise AssertionError(
        f"no exec event for pid {proc.pid} ({target}) within 10 s; "
        f"{len(seen)} other events seen, e.g. {seen[:3]}")
