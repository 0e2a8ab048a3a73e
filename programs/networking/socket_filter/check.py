"""socket_filter: marked datagrams never reach the filtered socket; the others, and an unfiltered socket, do.

Runs on the loopback of a fresh network namespace (removed in all cases).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import time

from pyroute2 import IPRoute, netns

MARKER = b"BPFDROP!"  # SOCKET_FILTER_MARKER in socket_filter.h
SO_ATTACH_BPF = 50  # include/uapi/asm-generic/socket.h; Python's socket module lacks it
U32, U64 = struct.Struct("<I"), struct.Struct("<Q")
N = 4


@contextlib.contextmanager
def _inside(ns: str):
    """This thread in network namespace ns for the block: sockets made there stay there."""
    netns.pushns(ns)
    try:
        yield
    finally:
        netns.popns()


def _drain(s: socket.socket, quiet: float = 1.0) -> list[bytes]:
    """Everything s receives until nothing came for `quiet` seconds (at most 10 s)."""
    got: list[bytes] = []
    last = start = time.monotonic()
    while time.monotonic() - last < quiet and time.monotonic() - start < 10:
        if select.select([s], [], [], 0.1)[0]:
            got.append(s.recv(256))
            last = time.monotonic()
    return got


def _verdicts(m) -> tuple[int, int]:
    return tuple(U64.unpack(m.lookup(U32.pack(k))[:8])[0] for k in (0, 1))


def check(ctx) -> str | None:
    prog = ctx.obj.programs["socket_filter"]
    ns = f"socket_filter_{os.getpid() % 100000}"
    socks: list[socket.socket] = []
    netns.create(ns)
    try:
        with _inside(ns):
            with IPRoute() as ipr:
                ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
            for _ in range(3):  # filtered receiver, unfiltered receiver, sender
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
        filtered, plain, tx = socks
        filtered.bind(("127.0.0.1", 0))
        plain.bind(("127.0.0.1", 0))
        filtered.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, prog.fd)

        before = _verdicts(ctx.obj.maps["verdicts"])
        sent_clean, sent_marked = [], []
        for i in range(N):  # interleaved, so order cannot decide
            for dst in (filtered, plain):
                clean, marked = b"hello %d" % i, MARKER + b" %d" % i
                tx.sendto(clean, dst.getsockname())
                tx.sendto(marked, dst.getsockname())
                if dst is filtered:
                    sent_clean.append(clean)
                    sent_marked.append(marked)
        got_filtered, got_plain = _drain(filtered), _drain(plain)
        after = _verdicts(ctx.obj.maps["verdicts"])
    finally:
        for s in socks:
            s.close()
        netns.remove(ns)

    leaked = [d for d in got_filtered if d.startswith(MARKER)]
    assert not leaked, f"the filtered socket received {len(leaked)} marked datagrams: {leaked[:2]}"
    assert got_filtered == sent_clean, (
        f"the filtered socket received {got_filtered}, expected the unmarked {sent_clean}")
    assert len(got_plain) == 2 * N, (
        f"the unfiltered socket received {len(got_plain)} of {2 * N} datagrams")
    kept, dropped = after[0] - before[0], after[1] - before[1]
    assert (kept, dropped) == (N, N), f"counters: kept +{kept}, dropped +{dropped}; expected +{N} each"
    return (f"{N} marked datagrams dropped at the filtered socket, {N} unmarked delivered; "
            f"the unfiltered socket got all {2 * N}")
