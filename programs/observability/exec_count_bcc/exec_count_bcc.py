#!/usr/bin/env python3
# Counts exec() calls per process in a BCC hash map from the sched_process_exec tracepoint.
# Demonstrates the BCC style: C text compiled inside the guest against that kernel's headers.
"""Exit 0 when the exec this script causes is counted for its own pid, 1 otherwise."""

import ctypes
import subprocess
import sys

from bcc import BPF

PROGRAM = r"""
BPF_HASH(execs, u32, u64);

TRACEPOINT_PROBE(sched, sched_process_exec)
{
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    execs.increment(pid);
    return 0;
}
"""


def main() -> int:
    b = BPF(text=PROGRAM)
    child = subprocess.Popen(["/bin/true"])
    child.wait()
    execs = b["execs"]
    count = execs.get(ctypes.c_uint32(child.pid))
    seen = count.value if count is not None else 0
    if seen < 1:
        others = len(execs)
        print(f"no exec counted for pid {child.pid} ({others} other pids counted)")
        return 1
    print(f"exec of pid {child.pid} counted {seen} time(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
