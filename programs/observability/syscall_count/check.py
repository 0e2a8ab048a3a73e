"""syscall_count: make N getppid(2) calls from this process and find them counted."""

from __future__ import annotations

import os
import platform
import struct

U32, U64 = struct.Struct("<I"), struct.Struct("<Q")
GETPPID = {"x86_64": 110, "aarch64": 173}  # getppid's number in each architecture's table
CALLS = 1000


def _total(counts, nr: int) -> int:
    return sum(U64.unpack(v[:8])[0] for v in counts.lookup_percpu(U32.pack(nr)))


def check(ctx) -> str | None:
    arch = platform.machine()
    assert arch in GETPPID, f"no getppid syscall number known for {arch}"
    nr = GETPPID[arch]
    counts = ctx.obj.maps["counts"]
    ctx.obj.maps["target_pid"].update(U32.pack(0), U32.pack(os.getpid()))
    try:
        before = _total(counts, nr)
        for _ in range(CALLS):
            os.getppid()  # glibc does not cache getppid: one syscall per call
        after = _total(counts, nr)
    finally:
        ctx.obj.maps["target_pid"].update(U32.pack(0), U32.pack(0))
    n = after - before
    assert n >= CALLS, (
        f"getppid (nr {nr}) counted {n} times for pid {os.getpid()}, expected >= {CALLS}")
    numbers = len(list(counts.keys()))
    return (f"pid {os.getpid()}: {n} getppid calls counted (expected >= {CALLS}); "
            f"{numbers} distinct syscall numbers in the map")
