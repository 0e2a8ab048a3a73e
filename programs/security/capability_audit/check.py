"""capability_audit: a child sets the hostname (needs CAP_SYS_ADMIN); find its capability event."""

from __future__ import annotations

import os
import socket
import struct
import time

EVENT = struct.Struct("<IIiI16s")  # struct cap_event in capability_audit.h
CAP_SYS_ADMIN = 21  # include/uapi/linux/capability.h


def _sethostname_child() -> int:
    """A child that sets the hostname to what it already is: a CAP_SYS_ADMIN check, no change."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            socket.sethostname(socket.gethostname())
            code = 0
        finally:
            os._exit(code)
    return pid


def check(ctx) -> str | None:
    ring = ctx.obj.ringbuf("events")
    pid = _sethostname_child()
    status = os.waitpid(pid, 0)[1]
    assert os.waitstatus_to_exitcode(status) == 0, (
        f"child {pid} could not set the hostname (wait status {status:#x})")

    caps_of_child: list[int] = []
    others = 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for raw in ring.poll(0.5):
            assert len(raw) >= EVENT.size, f"event of {len(raw)} bytes, expected {EVENT.size}"
            epid, uid, cap, opts, comm = EVENT.unpack_from(raw)
            if epid != pid:
                others += 1
                continue
            caps_of_child.append(cap)
            if cap == CAP_SYS_ADMIN:
                assert uid == os.getuid(), f"event of pid {pid} has uid {uid}, not {os.getuid()}"
                name = comm.split(b"\0", 1)[0].decode(errors="replace")
                return (f"pid {pid}: CAP_SYS_ADMIN ({cap}) check seen, opts {opts:#x}, comm "
                        f"{name!r}; {others} events of other processes")
    lost = ctx.obj.maps["lost"].lookup(struct.pack("<I", 0))
    raise AssertionError(
        f"no CAP_SYS_ADMIN ({CAP_SYS_ADMIN}) event for pid {pid} within 10 s; its events name "
        f"capabilities {sorted(set(caps_of_child))}; {others} events of other processes; "
        f"{struct.unpack('<Q', lost)[0] if lost else '?'} lost")
