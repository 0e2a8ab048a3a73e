"""kill_forbidden_syscall: two children call personality(2); only the watched one dies of SIGKILL."""

from __future__ import annotations

import ctypes
import os
import platform
import signal
import struct

U32, U64 = struct.Struct("<I"), struct.Struct("<Q")
PERSONALITY = {"x86_64": 135, "aarch64": 92}  # its number in each architecture's table
QUERY = 0xFFFFFFFF  # personality(0xffffffff) only reads the persona: harmless to call


def _spawn(personality) -> tuple[int, int]:
    """A child blocked on a pipe; released, it calls personality(2) and exits 0 (pid, pipe)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 2
        try:
            os.close(w)
            os.read(r, 1)
            code = 0 if personality(QUERY) != -1 else 3
        finally:
            os._exit(code)
    os.close(r)
    return pid, w


def _fate(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited {os.WEXITSTATUS(status)}"


def check(ctx) -> str | None:
    arch = platform.machine()
    assert arch in PERSONALITY, f"no personality syscall number known for {arch}"
    nr = PERSONALITY[arch]
    personality = ctypes.CDLL(None, use_errno=True).personality
    personality.argtypes, personality.restype = [ctypes.c_ulong], ctypes.c_int
    watched = ctx.obj.maps["watched"]
    ctx.obj.maps["forbidden_nr"].update(U32.pack(0), U32.pack(nr))

    target, w_target = _spawn(personality)
    bystander, w_bystander = _spawn(personality)
    release = {target: w_target, bystander: w_bystander}
    status: dict[int, int] = {}
    kills = None
    try:
        watched.update(U32.pack(target), U64.pack(0))
        for w in release.values():  # both make the call only now
            os.write(w, b"x")
        for pid in release:
            status[pid] = os.waitpid(pid, 0)[1]
        kills = watched.lookup(U32.pack(target))
    finally:
        for pid, w in release.items():
            os.close(w)  # a child never released reads EOF and exits
            if pid not in status:
                status[pid] = os.waitpid(pid, 0)[1]
        watched.delete(U32.pack(target))

    t, b = status[target], status[bystander]
    assert os.WIFSIGNALED(t) and os.WTERMSIG(t) == signal.SIGKILL, (
        f"watched child {target} {_fate(t)} after personality() (nr {nr}), expected SIGKILL")
    assert os.WIFEXITED(b) and os.WEXITSTATUS(b) == 0, (
        f"unwatched child {bystander} {_fate(b)} after the same call, expected exit 0")
    n = U64.unpack(kills)[0] if kills else 0
    assert n == 1, f"map 'watched' counts {n} SIGKILLs sent to pid {target}, expected 1"
    return (f"watched pid {target} killed by SIGKILL at personality() (nr {nr}), counted once; "
            f"unwatched pid {bystander} made the same call and exited 0")
