#!/usr/bin/env python3
# Reports every completed open (pid, fd, path) from a kprobe/kretprobe pair on do_sys_openat2.
# The BCC counterpart of file_open_fentry/file_open_kprobe: C text compiled in the guest, perf buffer events.
"""Exit 0 when the open this script makes is reported with its own pid, path and fd; 1 otherwise."""

import ctypes
import os
import sys
import tempfile
import time

from bcc import BPF

PATH_LEN = 256

PROGRAM = r"""
#include <uapi/linux/ptrace.h>

struct open_event {
    u32 pid;
    s32 ret;
    char path[PATH_LEN];
};

/* thread id -> the open it is in: the kretprobe sees only the return value */
BPF_HASH(in_flight, u32, struct open_event);
BPF_PERF_OUTPUT(events);

/* open(2), openat(2) and openat2(2) all go through do_sys_openat2 (5.6 on) */
int kprobe__do_sys_openat2(struct pt_regs *ctx, int dfd, const char __user *filename)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tid = id;
    struct open_event e = {};

    e.pid = id >> 32;
    bpf_probe_read_user_str(e.path, sizeof(e.path), filename);
    in_flight.update(&tid, &e);
    return 0;
}

int kretprobe__do_sys_openat2(struct pt_regs *ctx)
{
    u32 tid = bpf_get_current_pid_tgid();
    struct open_event *e = in_flight.lookup(&tid);

    if (!e)
        return 0;
    e->ret = PT_REGS_RC(ctx);
    events.perf_submit(ctx, e, sizeof(*e));
    in_flight.delete(&tid);
    return 0;
}
"""


class OpenEvent(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_uint32), ("ret", ctypes.c_int32),
                ("path", ctypes.c_char * PATH_LEN)]


def main() -> int:
    b = BPF(text=PROGRAM, cflags=[f"-DPATH_LEN={PATH_LEN}"])
    seen: list[tuple[int, int, str]] = []

    def on_event(cpu, data, size):
        e = ctypes.cast(data, ctypes.POINTER(OpenEvent)).contents
        seen.append((e.pid, e.ret, e.path.decode(errors="replace")))

    b["events"].open_perf_buffer(on_event)
    pid = os.getpid()
    with tempfile.TemporaryDirectory(prefix="file_open_bcc.") as d:
        path = os.path.join(d, f"opened-by-{pid}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            b.perf_buffer_poll(timeout=500)
            mine = [ev for ev in seen if ev[0] == pid and ev[2] == path]
            if mine:
                break
    if not mine:
        print(f"no open event for pid {pid} and {path} within 10 s "
              f"({len(seen)} other events, e.g. {seen[:3]})")
        return 1
    if mine[0][1] != fd:
        print(f"open of {path} reported fd {mine[0][1]}, the process got {fd}")
        return 1
    print(f"pid {pid}: open of {path} seen with fd {fd}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
