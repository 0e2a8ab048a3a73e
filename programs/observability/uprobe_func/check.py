"""uprobe_func: call glibc's getppid() N times and find N calls, N returns and the right value."""

from __future__ import annotations

import ctypes
import os
import platform
import struct

STATS = struct.Struct("<QQq")  # struct call_stats in uprobe_func.h
U32 = struct.Struct("<I")
CALLS = 200
LIBC = f"/lib/{platform.machine()}-linux-gnu/libc.so.6"  # the library the SEC() names


def check(ctx) -> str | None:
    getppid = ctypes.CDLL(LIBC).getppid  # glibc's function itself, as the probe sees it
    getppid.restype = ctypes.c_int
    stats = ctx.obj.maps["stats"]
    pid = os.getpid()
    want = os.getppid()  # os.getppid() calls the same function: before the count starts
    stats.delete(U32.pack(pid))
    for _ in range(CALLS):
        got = getppid()
        assert got == want, f"glibc getppid() returned {got}, os.getppid() {want}"
    raw = stats.lookup(U32.pack(pid))
    assert raw is not None, f"no getppid() call counted for pid {pid}: the uprobe did not fire"
    calls, returns, last = STATS.unpack_from(raw)
    assert calls == CALLS, f"pid {pid}: {calls} getppid() entries counted, expected {CALLS}"
    assert returns == CALLS, f"pid {pid}: {returns} returns counted, expected {CALLS}"
    assert last == want, f"the uretprobe saw getppid() return {last}, the process got {want}"
    return f"pid {pid}: {calls} calls of {LIBC}:getppid seen at entry and return (value {last})"
