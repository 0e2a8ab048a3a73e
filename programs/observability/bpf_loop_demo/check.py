"""bpf_loop_demo: getppid() from this process makes the program sum 0..n-1 with bpf_loop."""

from __future__ import annotations

import errno
import os
import struct

CONFIG = struct.Struct("<III")  # struct loop_config: pid, nr_loops, stop_at
RESULT = struct.Struct("<qQ")  # struct loop_result: ret, sum
U32 = struct.Struct("<I")
N = 100_000  # far beyond what the verifier could walk as an unrolled loop
MAX_LOOPS = 1 << 23  # BPF_MAX_LOOPS: bpf_loop refuses more iterations


def _run_once(ctx, nr_loops: int, stop_at: int) -> tuple[int, int]:
    pid = os.getpid()
    results = ctx.obj.maps["results"]
    results.delete(U32.pack(pid))
    ctx.obj.maps["loop_cfg"].update(U32.pack(0), CONFIG.pack(pid, nr_loops, stop_at))
    try:
        os.getppid()
    finally:
        ctx.obj.maps["loop_cfg"].update(U32.pack(0), CONFIG.pack(0, 0, 0))
    raw = results.lookup(U32.pack(pid))
    assert raw is not None, f"no result for pid {pid}: the getppid tracepoint program did not run"
    return RESULT.unpack(raw)


def check(ctx) -> str | None:
    ret, total = _run_once(ctx, N, 0)
    assert ret == N, f"bpf_loop({N}) returned {ret}, expected {N} iterations"
    assert total == N * (N - 1) // 2, f"sum of 0..{N - 1} came back as {total}"

    stop = 1234
    ret, total = _run_once(ctx, N, stop)
    assert ret == stop, f"callback asked to stop after {stop} iterations, bpf_loop returned {ret}"
    assert total == stop * (stop - 1) // 2, f"sum of 0..{stop - 1} came back as {total}"

    ret, _ = _run_once(ctx, MAX_LOOPS + 1, 0)
    assert ret == -errno.E2BIG, f"bpf_loop({MAX_LOOPS + 1}) returned {ret}, expected -E2BIG"
    return (f"bpf_loop ran {N} iterations (sum {N * (N - 1) // 2}), stopped early at {stop} "
            f"on request, and refused {MAX_LOOPS + 1} with E2BIG")
