"""syscall_latency_hist: sleep a known time N times and find N calls in the right log2 buckets."""

from __future__ import annotations

import ctypes
import errno
import os
import struct

U32, U64 = struct.Struct("<I"), struct.Struct("<Q")
SLOTS = 64  # HIST_SLOTS in syscall_latency_hist.h
CALLS = 15
# (requested sleep in ns, slowest bucket the median may land in). A sleep never ends early,
# so no call may land below floor(log2(request)); under emulation it may overrun, so the
# upper bound is two buckets (4x) above the request, for the median only.
BATCHES = [(10_000_000, 25), (1_000_000, 21)]
CLOCK_MONOTONIC = 1

_libc = ctypes.CDLL(None, use_errno=True)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _sleep(ns: int) -> None:
    """One relative clock_nanosleep(2) of `ns`. Not time.sleep: since Python 3.11 it sleeps
    until an absolute deadline computed before the call, so the system call itself may
    last less than asked when the process was slow to reach it (seen under TCG: a 10 ms
    sleep measured in the 2^22 bucket). A relative sleep never ends early."""
    ts = _Timespec(ns // 1_000_000_000, ns % 1_000_000_000)
    ret = _libc.clock_nanosleep(CLOCK_MONOTONIC, 0, ctypes.byref(ts), None)
    if ret:  # returns the error number itself
        raise AssertionError(f"clock_nanosleep({ns} ns): {errno.errorcode.get(ret, ret)}"
                             " (a signal cut the sleep short: its entry is not a whole sleep)")


def _floor_log2(ns: int) -> int:
    return ns.bit_length() - 1


def _read(hist) -> list[int]:
    return [U64.unpack(hist.lookup(U32.pack(i)) or bytes(8))[0] for i in range(SLOTS)]


def _clear(hist) -> None:
    for i in range(SLOTS):
        hist.update(U32.pack(i), U64.pack(0))


def _median_slot(counts: list[int]) -> int:
    half, seen = (sum(counts) + 1) // 2, 0
    for slot, n in enumerate(counts):
        seen += n
        if seen >= half:
            return slot
    return SLOTS - 1


def _show(counts: list[int]) -> str:
    return ", ".join(f"2^{i}: {n}" for i, n in enumerate(counts) if n)


def check(ctx) -> str | None:
    hist = ctx.obj.maps["hist"]
    target = ctx.obj.maps["target_pid"]
    summary = []
    for request_ns, slowest in BATCHES:
        _clear(hist)
        target.update(U32.pack(0), U32.pack(os.getpid()))
        try:
            for _ in range(CALLS):
                _sleep(request_ns)
        finally:
            target.update(U32.pack(0), U32.pack(0))
        counts = _read(hist)
        total = sum(counts)
        assert total == CALLS, (
            f"{CALLS} sleeps of {request_ns} ns made {total} histogram entries ({_show(counts)})")
        floor = _floor_log2(request_ns)
        early = sum(counts[:floor])
        assert early == 0, (
            f"{early} sleeps of {request_ns} ns measured under 2^{floor} ns ({_show(counts)})")
        median = _median_slot(counts)
        assert median <= slowest, (
            f"sleeps of {request_ns} ns: median bucket 2^{median} ns, expected 2^{floor}"
            f"..2^{slowest} ({_show(counts)})")
        summary.append(f"{request_ns // 1_000_000} ms x{CALLS} -> {_show(counts)}")
    return "; ".join(summary)
