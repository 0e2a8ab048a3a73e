"""kprobe_multi: call getppid(2) and getpgid(2) different numbers of times; find each count."""

from __future__ import annotations

import os
import platform
import struct

U32, U64 = struct.Struct("<I"), struct.Struct("<Q")
# the syscall entry points are named after the architecture, as the object's SEC() is
PREFIX = {"x86_64": "__x64_sys_", "aarch64": "__arm64_sys_"}[platform.machine()]
CALLS = {f"{PREFIX}getppid": 300, f"{PREFIX}getpgid": 200}
# the address bpf_get_func_ip reports is the symbol's, or a few bytes in where the kernel
# starts functions with an ENDBR64 (IBT) and reports the ftrace site after it
SLACK = 16


def _kallsyms(names: set[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    with open("/proc/kallsyms") as f:
        for line in f:
            addr, _, name = line.split()[:3]
            if name in names:
                out[name] = int(addr, 16)
    return out


def check(ctx) -> str | None:
    addrs = _kallsyms(set(CALLS))
    assert set(addrs) == set(CALLS), f"not in /proc/kallsyms: {set(CALLS) - set(addrs)}"
    assert all(addrs.values()), "/proc/kallsyms shows zero addresses (kptr_restrict)"

    counts = ctx.obj.maps["calls"]
    target = ctx.obj.maps["target_pid"]
    counts.clear()
    target.update(U32.pack(0), U32.pack(os.getpid()))
    try:
        for _ in range(CALLS[f"{PREFIX}getppid"]):
            os.getppid()
        for _ in range(CALLS[f"{PREFIX}getpgid"]):
            os.getpgid(0)
    finally:
        target.update(U32.pack(0), U32.pack(0))

    got: dict[str, int] = {}
    for k, v in counts.items():
        ip = U64.unpack(k)[0]
        name = next((n for n, a in addrs.items() if a <= ip < a + SLACK), f"{ip:#x}")
        got[name] = got.get(name, 0) + U64.unpack(v[:8])[0]
    assert got == CALLS, f"pid {os.getpid()}: calls per function {got}, expected {CALLS}"
    return "one kprobe.multi link counted " + ", ".join(f"{n} x{c}" for n, c in got.items())
